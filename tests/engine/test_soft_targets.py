"""Soft targets: the training loss is -sum p * log_softmax for rows with class probabilities, CE otherwise."""
import os

import numpy as np
import torch
import torch.nn.functional as F

import train
from models import create_model
from tests.models.inputs import FEAT_DIMS, LEVELS, batch, random_store
from toolkit.io import TRAIN_KEY, VALID_KEY, load_split, save_split
from toolkit.tables import MER_CLASSES


def model_and_output(n=12):
    torch.manual_seed(0)
    model = create_model("moe", FEAT_DIMS, 6, feat_levels=LEVELS).train()
    store = random_store(n)
    model.fit_normalizers(store, torch.arange(n))
    torch.manual_seed(1)
    return model, model(batch(store, torch.arange(n)), None)


def test_soft_target_loss_equals_ce_for_one_hot_and_differs_for_soft_probs():
    model, out = model_and_output()
    labels = torch.arange(12) % 6
    weights = torch.rand(12) + 0.5
    hard = model.loss(out, labels, None, weights, label_smoothing=0.1)
    one_hot = model.loss(out, F.one_hot(labels, 6).float(), None, weights, label_smoothing=0.1)
    assert torch.allclose(hard, one_hot, atol=1e-6)
    soft = torch.softmax(torch.randn(12, 6), dim=1)
    assert not torch.allclose(model.loss(out, soft, None, weights), model.loss(out, labels, None, weights), atol=1e-3)
    model.aux_weight = 0.0  # the fused head alone: the loss is the weighted soft cross-entropy
    expected = (weights * -(soft * torch.log_softmax(out["logits"], dim=1)).sum(1)).sum() / weights.sum()
    assert torch.allclose(model.loss(out, soft, None, weights), expected, atol=1e-6)


def test_one_hot_probs_in_a_split_train_exactly_like_hard_labels(tiny_project, tmp_path):
    p = tiny_project
    split = load_split(os.path.join(p["train_lst"], "seed0.npy"))
    classes = list(MER_CLASSES)
    train_info = dict(split[TRAIN_KEY])
    train_info["probs"] = [np.eye(6)[classes.index(e)].tolist() if i % 2 else None for i, e in enumerate(train_info["emos"])]
    save_split(os.path.join(p["train_lst"], "onehot.npy"), train_info, split[VALID_KEY])
    soft_info = dict(train_info, probs=[[1 / 6] * 6 for _ in train_info["emos"]])
    save_split(os.path.join(p["train_lst"], "uniform.npy"), soft_info, split[VALID_KEY])

    def losses(dataset):
        summary = train.run(train.parse_args(p["argv"] + ["--dataset", dataset, "--epochs", "3", "--no_plots", "--run_dir", str(tmp_path / dataset)]))
        return summary["loss"], summary["f1"]

    assert np.allclose(losses("seed0"), losses("onehot"), atol=1e-6)
    assert not np.allclose(losses("seed0"), losses("uniform"), atol=1e-4)  # uniform targets teach nothing

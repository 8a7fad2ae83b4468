"""The field's fusion baselines (lf_dnn, attention, tfn, lmf, misa, mmim, mult): each trains and predicts
through train.py and predict.py, and the parts the contract tests do not reach (TFN's pairwise product, the
extra training losses of MISA and MMIM, MulT's null key, one feature alone) behave."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

import predict as predict_script
import train
from models import create_model, model_class, model_defaults
from tests.models.test_contract import CLASSES, FEAT_DIMS, LEVELS, batch, random_store, some_absent

BASELINES = ["lf_dnn", "attention", "tfn", "lmf", "misa", "mmim", "mult"]


def build(name, seed=0, **overrides):
    torch.manual_seed(seed)
    cfg = model_class(name).config_class(**{**model_defaults(name), **overrides})
    return create_model(name, FEAT_DIMS, CLASSES, cfg, LEVELS)


@pytest.mark.parametrize("name", BASELINES)
def test_trains_and_predicts_from_the_scripts(name, tiny_project, tmp_path):
    run_dir = tmp_path / "run"
    summary = train.main(tiny_project["argv"] + ["--model", name, "--epochs", "3", "--batch_size", "16", "--save_model", "--no_plots"])
    saved = json.load(open(run_dir / "summary.json"))
    assert saved["model"] == name and np.isfinite(saved["f1"]) and saved["f1"] == summary["f1"]
    names = tiny_project["names"]
    csv = tmp_path / "names.csv"
    pd.DataFrame({"name": names, "discrete": tiny_project["emos"]}).to_csv(csv, index=False)
    preds, metrics = predict_script.main(["--run", str(run_dir), "--names", str(csv), "--out", str(tmp_path / "out"),
                                       "--cache_dir", tiny_project["argv"][3], "--no_progress"])
    assert preds["probs"].shape == (len(names), 6) and np.isfinite(preds["probs"]).all()
    assert metrics["f1"] > 1 / 6, "three epochs on the easy tiny data beat chance on the clips trained on"


def test_attention_topn_is_the_attention_model():
    assert model_class("attention_topn") is model_class("attention")


@pytest.mark.parametrize("name", BASELINES)
def test_one_feature_alone(name):
    torch.manual_seed(0)
    model = create_model(name, {"a-UTT": 10}, CLASSES).eval()
    with torch.no_grad():
        out = model({"a-UTT": torch.randn(3, 10)})
    assert out["logits"].shape == (3, CLASSES) and torch.isfinite(out["logits"]).all()
    assert torch.equal(out["gate"], torch.ones(3, 1))


def test_tfn_pairwise_products_beyond_full_max():
    """Past full_max features TFN concatenates the E(E-1)/2 pairwise products, and still masks absent features."""
    model = build("tfn", full_max=2, tensor_dim=4).eval()
    assert model.post_fusion[1].in_features == 3 * 5 * 5
    assert build("tfn").post_fusion[1].in_features == 17 ** 3  # 3 features, full product of [h; 1] (tensor_dim 16)
    feats, present = batch(random_store(6), torch.arange(6)), some_absent(6)
    changed = dict(feats, **{"a-UTT": feats["a-UTT"] + 50})
    with torch.no_grad():
        out, again = model(feats, present)["logits"], model(changed, present)["logits"]
    assert torch.allclose(out[1], again[1], atol=1e-5) and not torch.allclose(out[0], again[0], atol=1e-3)


def test_lmf_stays_in_range_with_many_features():
    """The factors start near 1 on the constant row, so a product over 16 features neither vanishes nor explodes."""
    torch.manual_seed(0)
    dims = {f"f{i}-UTT": 8 for i in range(16)}
    model = create_model("lmf", dims, CLASSES).eval()
    with torch.no_grad():
        logits = model({k: torch.randn(32, 8) for k in dims})["logits"]
    assert torch.isfinite(logits).all() and 1e-3 < logits.std() < 1e3


@pytest.mark.parametrize("name, weights", [("misa", ("sim_weight", "diff_weight", "recon_weight")), ("mmim", ("cpc_weight",))])
def test_extra_losses_count_in_training_only(name, weights):
    """MISA's and MMIM's batch-level losses add to the training loss; eval outputs carry none (no batch effect)."""
    store = random_store(12)
    labels = torch.arange(12) % CLASSES
    feats, present = batch(store, torch.arange(12)), some_absent(12)
    present["c-UTT"][:] = False  # a feature absent from the whole batch keeps the loss and gradients finite
    with_extra, without = build(name).train(), build(name, **{w: 0.0 for w in weights}).train()
    torch.manual_seed(1)
    out = with_extra(feats, present)
    torch.manual_seed(1)
    plain = without(feats, present)
    full, base = with_extra.loss(out, labels), without.loss(plain, labels)
    assert name in out and torch.isfinite(full) and full > base
    assert torch.allclose(base, super(type(without), without).loss(plain, labels))
    full.backward()
    assert all(torch.isfinite(p.grad).all() for p in with_extra.parameters() if p.grad is not None)
    with torch.no_grad():
        assert name not in with_extra.eval()(feats, present)


def test_mult_clip_with_a_single_present_feature():
    """A token with no other feature to attend to reads the null key: finite, and blind to the absent inputs."""
    model = build("mult").eval()
    feats = batch(random_store(4), torch.arange(4))
    present = {k: torch.tensor([True, False, True, True]) for k in FEAT_DIMS}
    present["c-UTT"][1] = True
    changed = dict(feats, **{"a-UTT": feats["a-UTT"] * 7, "au-FRM": type(feats["au-FRM"])(feats["au-FRM"][0] * 7, feats["au-FRM"][1])})
    with torch.no_grad():
        out, again = model(feats, present), model(changed, present)
    assert torch.isfinite(out["logits"]).all() and torch.allclose(out["logits"][1], again["logits"][1], atol=1e-5)
    assert torch.equal(out["gate"][1], torch.tensor([0.0, 0.0, 1.0]))

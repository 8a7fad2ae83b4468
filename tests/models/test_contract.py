"""The contract every registered model keeps, checked for each name in the registry (a new model file is
picked up without editing this test): outputs, batch independence, absent experts, frame features,
checkpoint round trip, loss and gradients, and a config whose fields are documented flags."""
import dataclasses

import pytest
import torch

from models import create_model, known_models, model_class, model_defaults, model_hparams

from tests.models.inputs import FEAT_DIMS, LEVELS, batch, random_store  # noqa: F401 (re-exported for other tests)
CLASSES = 6


def build(name, seed=0):
    torch.manual_seed(seed)
    return create_model(name, FEAT_DIMS, CLASSES, feat_levels=LEVELS)




def some_absent(n):
    """Presence masks where clip 1 lacks a-UTT and clip 2 lacks the frame feature."""
    present = {k: torch.ones(n, dtype=torch.bool) for k in FEAT_DIMS}
    present["a-UTT"][1] = False
    present["au-FRM"][2] = False
    return present


def check_outputs(name):
    model = build(name).eval()
    with torch.no_grad():
        out = model(batch(random_store(5), torch.arange(5)))
    assert out["logits"].shape == (5, CLASSES) and torch.isfinite(out["logits"]).all()
    assert list(out["expert_logits"]) == list(FEAT_DIMS)
    assert all(lg.shape == (5, CLASSES) for lg in out["expert_logits"].values())
    assert out["gate"].shape[0] == 5 and out["gate"].shape[1] >= len(FEAT_DIMS)
    assert torch.allclose(out["gate"].sum(-1), torch.ones(5), atol=1e-5)
    assert out["valence"].shape == (5,) and out["present"] is None
    assert list(model.experts) == list(FEAT_DIMS)  # checkpoints say which feature each expert reads


def check_batch_independence(name):
    """In eval mode a clip's output is the same alone, in any batch and in any order (padding included)."""
    model = build(name).eval()
    store = random_store(24)
    with torch.no_grad():
        full = model(batch(store, torch.arange(24)))["logits"]
        alone = torch.cat([model(batch(store, torch.tensor([i])))["logits"] for i in range(24)])
        order = torch.randperm(24, generator=torch.Generator().manual_seed(3))
        reordered = model(batch(store, order))["logits"]
    assert torch.allclose(full, alone, atol=1e-5)
    assert torch.allclose(full[order], reordered, atol=1e-5)


def check_absent_experts(name):
    """An absent expert's input does not reach its clip's output, gets no fusion weight, and leaves the rest alone."""
    model = build(name).eval()
    feats = batch(random_store(6), torch.arange(6))
    present = some_absent(6)
    changed = dict(feats, **{"a-UTT": feats["a-UTT"] + 100 * torch.randn(6, 10, generator=torch.Generator().manual_seed(5))})
    with torch.no_grad():
        out = model(feats, present)
        again = model(changed, present)
    assert torch.equal(out["present"], torch.stack([present[k] for k in FEAT_DIMS], dim=1))
    assert out["gate"][1, 0] == 0 and out["gate"][2, 1] == 0
    assert torch.isfinite(out["logits"]).all()
    assert torch.allclose(out["logits"][1], again["logits"][1], atol=1e-5)  # clip 1 lacks a-UTT
    assert not torch.allclose(out["logits"][0], again["logits"][0], atol=1e-3)  # clip 0 has it


def check_frame_features(name):
    """Frame-level features get a temporal expert, whose output depends on the order of the frames."""
    from models.base import TemporalExpert

    model = build(name).eval()
    assert isinstance(model.experts["au-FRM"], TemporalExpert)
    feats = batch(random_store(4), torch.arange(4))
    x, valid = feats["au-FRM"]
    flipped = dict(feats, **{"au-FRM": type(feats["au-FRM"])(x.flip(1), valid.flip(1))})
    with torch.no_grad():
        out, rev = model(feats)["expert_logits"]["au-FRM"], model(flipped)["expert_logits"]["au-FRM"]
    assert torch.isfinite(out).all() and not torch.allclose(out, rev, atol=1e-4)


def check_checkpoint_round_trip(name, tmp_path):
    """save_checkpoint (train.py's meta) → inference.predictor.load_run rebuilds a model with identical outputs."""
    from inference.predictor import load_run
    from toolkit.runs import ARGS_FILE, CHECKPOINT_FILE, save_checkpoint

    model = build(name, seed=7)
    model.fit_normalizers({k: v for k, v in random_store(30).items()}, torch.arange(30))
    meta = {"model": name, "feat_dims": FEAT_DIMS, "feat_levels": LEVELS, "classes": [str(i) for i in range(CLASSES)],
            "hparams": dataclasses.asdict(model.cfg)}
    (tmp_path / ARGS_FILE).write_text("allow_missing: true\n")
    save_checkpoint(str(tmp_path / CHECKPOINT_FILE), model, meta)
    loaded, loaded_meta = load_run(str(tmp_path), torch.device("cpu"))
    assert type(loaded) is type(model) and loaded.cfg == model.cfg and not loaded.training
    feats, present = batch(random_store(8, seed=2), torch.arange(8)), some_absent(8)
    with torch.no_grad():
        for mask in (None, present):
            assert torch.equal(model.eval()(feats, mask)["logits"], loaded(feats, mask)["logits"])


def check_loss_and_backward(name):
    """In training (dropout, expert dropout, weights, NaN valence) the loss is finite and every parameter gets a finite gradient."""
    from models import get_model
    import argparse

    args = argparse.Namespace(feat_dims=FEAT_DIMS, feat_levels=LEVELS, num_classes=CLASSES, expert_dropout=0.3)
    torch.manual_seed(0)
    model = get_model(name, args).train()
    store = random_store(16)
    model.fit_normalizers(store, torch.arange(16))
    out = model(batch(store, torch.arange(16)), some_absent(16))
    labels = torch.arange(16) % CLASSES
    vals = torch.randn(16)
    vals[::3] = float("nan")
    loss = model.loss(out, labels, vals, torch.rand(16) + 0.5, val_weight=0.1, label_smoothing=0.1)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []  # distributed training (no find_unused_parameters) needs every parameter in the loss


def check_config(name):
    """The model's config extends ExpertConfig; every field is documented, and model_defaults mirrors it."""
    from models.hparams import ExpertConfig

    cls = model_class(name)
    model = build(name)
    assert issubclass(cls.config_class, ExpertConfig) and isinstance(model.cfg, cls.config_class)
    specs = model_hparams(name)
    assert [s.name for s in specs] == list(model_defaults(name)) == list(dataclasses.asdict(model.cfg))
    assert {s.name for s in dataclasses.fields(ExpertConfig)} <= {s.name for s in specs}
    assert all(s.metadata.get("help") for s in specs)


CONTRACT = [check_outputs, check_batch_independence, check_absent_experts, check_frame_features,
            check_checkpoint_round_trip, check_loss_and_backward, check_config]


def run_check(check, name, tmp_path):
    if "tmp_path" in check.__code__.co_varnames[:check.__code__.co_argcount]:
        return check(name, tmp_path)
    return check(name)


@pytest.mark.parametrize("check", CONTRACT, ids=[c.__name__ for c in CONTRACT])
@pytest.mark.parametrize("name", known_models())
def test_contract(name, check, tmp_path):
    run_check(check, name, tmp_path)


def test_the_contract_sees_both_shipped_models():
    assert {"moe", "auto_attention"} <= set(known_models())


@pytest.mark.parametrize("name", known_models())
def test_training_forward_traces_as_one_graph(name):
    """--compile needs the training forward (dropout noise of a part of a global batch included) without
    graph breaks; the eager backend checks the tracing without a C++ compiler."""
    from models.noise import global_batch

    model = build(name).train()
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    with global_batch(2, 10):
        out = compiled(batch(random_store(6), torch.arange(6)))
    assert out["logits"].shape == (6, CLASSES) and torch.isfinite(out["logits"]).all()
    torch._dynamo.reset()

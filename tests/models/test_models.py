import argparse

import pytest
import torch

from models import get_model, known_models, model_defaults
from toolkit.errors import UserError

FEAT_DIMS = {"a-UTT": 10, "b-UTT": 7, "c-UTT": 5}


def build(name, **overrides):
    args = argparse.Namespace(feat_dims=FEAT_DIMS, num_classes=6, **{**model_defaults(name), **overrides})
    torch.manual_seed(0)
    return get_model(name, args)


def random_feats(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(n, dim, generator=g) for name, dim in FEAT_DIMS.items()}


def test_registry_lists_known_models_on_unknown_name():
    assert {"moe", "auto_attention"} <= set(known_models())
    with pytest.raises(UserError, match="known models: .*auto_attention.*moe"):
        build("no-such-model")


@pytest.mark.parametrize("name", ["moe", "auto_attention"])
def test_outputs_and_experts_keyed_by_feature(name):
    model = build(name)
    out = model(random_feats(4))
    assert out["logits"].shape == (4, 6)
    assert set(out["expert_logits"]) == set(FEAT_DIMS)
    assert out["valence"].shape == (4,)
    assert torch.allclose(out["gate"].sum(-1), torch.ones(4), atol=1e-5)
    assert set(model.experts.keys()) == set(FEAT_DIMS)
    assert any(k.startswith("experts.b-UTT.") for k in model.state_dict())


@pytest.mark.parametrize("name", ["moe", "auto_attention"])
def test_prediction_does_not_depend_on_the_rest_of_the_batch(name):
    model = build(name).eval()
    feats = random_feats(64)
    with torch.no_grad():
        full = model(feats)["logits"]
        alone = torch.cat([model({k: v[i:i + 1] for k, v in feats.items()})["logits"] for i in range(64)])
        shuffled = torch.randperm(64, generator=torch.Generator().manual_seed(3))
        reordered = model({k: v[shuffled] for k, v in feats.items()})["logits"]
    assert torch.allclose(full, alone, atol=1e-5)
    assert torch.allclose(full[shuffled], reordered, atol=1e-5)


def test_moe_gate_covers_fused_head_option():
    assert build("moe", fused_head=True)(random_feats(2))["gate"].shape == (2, 4)
    assert build("moe", fused_head=False)(random_feats(2))["gate"].shape == (2, 3)


def test_loss_ignores_zero_weight_samples_and_missing_valence():
    model = build("moe").eval()
    feats = random_feats(6)
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    out = model(feats)
    vals = torch.tensor([1.0, -2.0, float("nan"), 0.5, float("nan"), 3.0])
    weights = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    loss = model.loss(out, labels, vals, weights, val_weight=0.5)
    assert torch.isfinite(loss)
    keep = weights > 0
    kept = {k: (v[keep] if torch.is_tensor(v) and v.dim() and len(v) == 6 else v) for k, v in out.items()}
    kept["expert_logits"] = {k: v[keep] for k, v in out["expert_logits"].items()}
    assert torch.allclose(loss, model.loss(kept, labels[keep], vals[keep], None, val_weight=0.5), atol=1e-6)
    all_nan = torch.full((6,), float("nan"))
    assert torch.allclose(model.loss(out, labels, all_nan, None, val_weight=0.5), model.loss(out, labels, None, None))


def test_standardize_uses_training_rows_only():
    model = build("moe")
    feats = {name: torch.randn(20, dim) * 3 + 5 for name, dim in FEAT_DIMS.items()}
    rows = torch.arange(0, 20, 2)
    model.fit_normalizers(feats, rows)
    norm = model.experts["a-UTT"].norm
    assert torch.allclose(norm.mean, feats["a-UTT"][rows].mean(0), atol=1e-5)
    assert torch.allclose(norm.std, feats["a-UTT"][rows].std(0, unbiased=False), atol=1e-4)


@pytest.mark.parametrize("name", ["moe", "auto_attention"])
def test_training_forward_traces_as_one_graph(name):
    """--compile needs the training forward (dropout noise of a part of a global batch included) without
    graph breaks; the eager backend checks the tracing without a C++ compiler."""
    from models.noise import global_batch

    torch.manual_seed(0)
    model = build(name).train()
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    with global_batch(2, 10):
        out = compiled(random_feats(6))
    assert out["logits"].shape == (6, 6) and torch.isfinite(out["logits"]).all()
    torch._dynamo.reset()

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

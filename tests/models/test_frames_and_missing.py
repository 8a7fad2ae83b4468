"""MoE specifics of absent experts (gate with and without the fused head, auxiliary loss) and expert dropout;
the contract every model keeps is in test_contract.py."""
import argparse

import pytest
import torch

from models import get_model, model_defaults

from tests.models.inputs import FEAT_DIMS, LEVELS, batch, random_store  # noqa: F401 (re-exported for other tests)


def build(name, **overrides):
    args = argparse.Namespace(feat_dims=FEAT_DIMS, feat_levels=LEVELS, num_classes=6, **{**model_defaults(name), **overrides})
    torch.manual_seed(0)
    return get_model(name, args)




@pytest.mark.parametrize("fused_head", [True, False])
def test_absent_expert_gets_zero_gate_and_does_not_change_the_output(fused_head):
    model = build("moe", fused_head=fused_head).eval()
    store = random_store(6)
    feats = batch(store, torch.arange(6))
    present = {"a-UTT": torch.tensor([True, False, True, True, True, True]),
               "au-FRM": torch.tensor([True, True, False, True, True, True]),
               "c-UTT": torch.ones(6, dtype=torch.bool)}
    with torch.no_grad():
        out = model(feats, present)
        assert out["gate"][1, 0] == 0 and out["gate"][2, 1] == 0
        assert torch.allclose(out["gate"].sum(-1), torch.ones(6), atol=1e-6)  # renormalised over present experts
        # the absent expert's input does not matter
        changed = dict(feats, **{"a-UTT": feats["a-UTT"] + 100 * torch.randn(6, 10)})
        again = model(changed, present)
    assert torch.allclose(out["logits"][1], again["logits"][1], atol=1e-5)
    assert not torch.allclose(out["logits"][0], again["logits"][0], atol=1e-3)


def test_aux_loss_ignores_absent_clips():
    model = build("moe", aux_weight=1.0).eval()
    feats = batch(random_store(6), torch.arange(6))
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    present = {k: torch.ones(6, dtype=torch.bool) for k in FEAT_DIMS}
    present["au-FRM"] = torch.tensor([True, True, True, False, False, False])
    out = model(feats, present)
    loss = model.loss(out, labels)
    # move the absent clips' logits of the frame expert: the loss must not change
    moved = dict(out, expert_logits=dict(out["expert_logits"]))
    moved["expert_logits"]["au-FRM"] = out["expert_logits"]["au-FRM"] + torch.tensor([0, 0, 0, 9.0, 9.0, 9.0]).unsqueeze(1) * torch.eye(6)[labels].flip(1)
    assert torch.allclose(loss, model.loss(moved, labels), atol=1e-6)
    moved["expert_logits"]["au-FRM"] = out["expert_logits"]["au-FRM"] + 9.0 * torch.eye(6)[labels].flip(1)
    assert not torch.allclose(loss, model.loss(moved, labels), atol=1e-3)


def test_expert_dropout_keeps_one_expert_and_only_in_training():
    model = build("moe", expert_dropout=0.9)
    feats = batch(random_store(200), torch.arange(200))
    present = {k: torch.ones(200, dtype=torch.bool) for k in FEAT_DIMS}
    present["c-UTT"][:50] = False
    model.train()
    data, fusion = model.presence(feats, present)
    assert fusion.any(1).all() and not (fusion & ~data).any()  # never resurrects an absent expert
    assert fusion.float().mean() < 0.6
    model.eval()
    data, fusion = model.presence(feats, present)
    assert torch.equal(data, fusion)
    assert model.presence(feats, None) == (None, None)
    model.train()
    out = model(feats, None)
    assert torch.isfinite(out["logits"]).all() and out["present"] is None

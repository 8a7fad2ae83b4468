"""Mixture of experts: one expert per feature, a gate that weighs the experts' logits (and a fused head's)."""
import dataclasses

import torch
import torch.nn as nn

from models import register_model
from models.base import FeatureExpertModel
from models.hparams import ExpertConfig, count, hparam
from models.noise import SampleDropout


@dataclasses.dataclass
class MoEConfig(ExpertConfig):
    """Defaults chosen with benchmarks/bench_quality.py: small experts and strong input dropout (chosen on the
    demo's 1,200 training clips), and a fused head with an MLP of width 256, chosen by mean rank over three
    structurally different sets (demo, demo-alt, mfeat; docs/10-benchmarks.md): a linear fused head let the
    gated average of weak experts' logits dominate and lost 3-4 points to early fusion on two of them."""

    fused_head: bool = hparam(True, 'add a head over all expert hiddens as one more gated "expert"', search=[True, False])
    fused_dim: int = hparam(256, "hidden width of the fused head's MLP (0: one linear layer over the expert hiddens)",
                            min=0, search=[0, 64, 128, 256, 512], legacy=0)
    # the shared fields redeclared with their search spaces (tune.py); defaults and help as in ExpertConfig
    hidden_dim: int = count(64, "width of every expert's hidden vector", search=[32, 64, 128])
    dropout: float = hparam(0.3, "dropout inside experts and heads", min=0, max=1, max_open=True, search=(0.0, 0.5))
    input_dropout: float = hparam(0.8, "dropout on the (standardised) input features: the strongest regulariser here",
                                  min=0, max=1, max_open=True, search=(0.3, 0.9))
    aux_weight: float = hparam(1.0, "weight of the mean per-expert auxiliary loss", min=0, search=(0.1, 3.0, "log"))


def fused_head(concat_dim, num_classes, cfg):
    """The head over all expert hiddens: linear, or an MLP of width ``fused_dim`` (the classifier of lf_dnn)."""
    if not cfg.fused_dim:
        return nn.Sequential(SampleDropout(cfg.dropout), nn.Linear(concat_dim, num_classes))
    return nn.Sequential(SampleDropout(cfg.dropout), nn.Linear(concat_dim, cfg.fused_dim), nn.ReLU(),
                         SampleDropout(cfg.dropout), nn.Linear(cfg.fused_dim, num_classes))


@register_model("moe")
class MoE(FeatureExpertModel):
    """Experts → per-sample gate over [expert logits..., fused-head logits] → weighted sum of logits.

    The gate reads all expert hiddens of one sample; each expert's own head also gets an auxiliary loss
    (see ``FeatureExpertModel.loss``) so that weak experts keep learning.

    An absent expert (the clip lacks its feature, or expert dropout removed it) gets gate logit -inf, so
    the softmax renormalises over the present experts (the fused head is always present), and its hidden
    is zeroed in the gate's and the fused head's input.
    """

    config_class = MoEConfig

    def __init__(self, feat_dims, num_classes, cfg, feat_levels=None):
        super().__init__(feat_dims, num_classes, cfg, feat_levels)
        concat_dim = cfg.hidden_dim * len(feat_dims)
        n_gated = len(feat_dims) + int(bool(cfg.fused_head))
        self.fused_head = fused_head(concat_dim, num_classes, cfg) if cfg.fused_head else None
        self.gate = nn.Sequential(SampleDropout(cfg.dropout), nn.Linear(concat_dim, n_gated))
        self.valence_head = nn.Linear(concat_dim, 1)

    def forward(self, feats, present=None):
        data, fusion = self.presence(feats, present)
        hiddens, expert_logits = self.encode(feats)
        parts = [hiddens[name] for name in self.feat_names]
        if fusion is not None:
            parts = [h * fusion[:, i:i + 1] for i, h in enumerate(parts)]
        concat = torch.cat(parts, dim=-1)
        candidates = [expert_logits[name] for name in self.feat_names]
        if self.fused_head is not None:
            candidates.append(self.fused_head(concat))
        gate_logits = self.gate(concat)
        if fusion is not None:
            mask = fusion if self.fused_head is None else torch.cat([fusion, torch.ones_like(fusion[:, :1])], dim=1)
            gate_logits = gate_logits.masked_fill(~mask, float("-inf"))
        gate = torch.softmax(gate_logits, dim=-1)
        logits = (torch.stack(candidates, dim=1) * gate.unsqueeze(-1)).sum(dim=1)
        return {
            "logits": logits,
            "expert_logits": expert_logits,
            "gate": gate,
            "valence": self.valence_head(concat).squeeze(-1),
            "present": data,
        }

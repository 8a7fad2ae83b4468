"""lmf: Low-rank Multimodal Fusion (Liu et al., "Efficient Low-rank Multimodal Fusion with
Modality-Specific Factors", ACL 2018), as in the official MER baselines (MERTools).

Original: the TFN tensor product, computed without building the tensor: each modality m has rank-R factors
W_m (R, d_m + 1, F); fused = Σ_r λ_r Π_m ([h_m; 1] W_m[r]) + b. Here one factor set per feature (the
experts of ``FeatureExpertModel`` give h_m), so any number of features works at a cost linear in E. The
factor row that multiplies the appended 1 starts at 1 (the others small), so the product over many
features starts near 1 + Σ (linear terms) instead of vanishing or exploding; absent features enter as
[0; 1] and keep only that constant row.
"""
import dataclasses

import torch
import torch.nn as nn

from models import register_model
from models.hparams import ExpertConfig, count
from models.fusion_parts import FusionBaseline
from models.noise import SampleDropout


@dataclasses.dataclass
class LMFConfig(ExpertConfig):
    rank: int = count(4, "rank R of each feature's fusion factors", search=[2, 4, 8, 16])
    fusion_dim: int = count(64, "width F of the fused vector", search=[32, 64, 128])


@register_model("lmf")
class LMF(FusionBaseline):
    """fused = Σ_r λ_r Π_m ([h_m; 1] W_m[r]) + b → dropout → class and valence heads."""

    config_class = LMFConfig

    def __init__(self, feat_dims, num_classes, cfg, feat_levels=None):
        super().__init__(feat_dims, num_classes, cfg, feat_levels)
        factors = torch.randn(len(feat_dims), cfg.rank, cfg.hidden_dim + 1, cfg.fusion_dim) * (cfg.hidden_dim + 1) ** -0.5 / 4
        factors[:, :, -1] += 1.0
        self.factors = nn.Parameter(factors)  # (E, R, H + 1, F)
        self.rank_weights = nn.Parameter(torch.full((cfg.rank,), 1.0 / cfg.rank))
        self.fusion_bias = nn.Parameter(torch.zeros(cfg.fusion_dim))
        self.drop = SampleDropout(cfg.dropout)
        self.head = nn.Linear(cfg.fusion_dim, num_classes)
        self.valence_head = nn.Linear(cfg.fusion_dim, 1)

    def forward(self, feats, present=None):
        h, fusion, data, expert_logits = self.hidden_stack(feats, present)
        z = torch.cat([h, torch.ones_like(h[..., :1])], dim=-1)  # (B, E, H + 1); absent: [0; 1]
        per_feature = torch.einsum("beh,erhf->berf", z, self.factors)  # (B, E, R, F)
        fused = torch.einsum("brf,r->bf", per_feature.prod(dim=1), self.rank_weights) + self.fusion_bias
        fused = self.drop(fused)
        return self.outputs(self.head(fused), expert_logits, self.present_weights(h, fusion), self.valence_head(fused), data)

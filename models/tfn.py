"""tfn: Tensor Fusion Network (Zadeh et al., "Tensor Fusion Network for Multimodal Sentiment Analysis",
EMNLP 2017), as in the official MER baselines (MERTools).

Original: a subnetwork per modality (audio, video MLPs, a text LSTM) gives h_m; the fusion tensor is the
outer product of [h_m; 1] over the three modalities (unimodal, bimodal and trimodal terms in one vector),
flattened into a post-fusion MLP. Here one branch per feature (the experts of ``FeatureExpertModel``), each
projected to ``tensor_dim`` first. The full product has (tensor_dim + 1)^E entries, which explodes past a few
features: up to ``full_max`` features (3 by default, the original) it is used as is; beyond, the fusion
vector concatenates the outer products of every *pair* of features (unimodal and bimodal terms, E(E-1)/2
blocks of (tensor_dim + 1)^2). Absent features enter as [0; 1], so only their constant term remains.
"""
import dataclasses

import torch
import torch.nn as nn

from models import register_model
from models.hparams import ExpertConfig, count
from models.fusion_parts import FusionBaseline, pair_sides
from models.noise import SampleDropout


@dataclasses.dataclass
class TFNConfig(ExpertConfig):
    tensor_dim: int = count(16, "each feature's hidden is projected to this width before the outer product", search=[8, 16, 32])
    full_max: int = count(3, "full outer product over all features up to this many features; pairwise products beyond", max=4,
                     search=[2, 3])
    fusion_dim: int = count(128, "width of the post-fusion MLP", search=[64, 128, 256])


@register_model("tfn")
class TFN(FusionBaseline):
    """[proj(h_m); 1] per feature → outer product (full or pairwise) → dropout → MLP (2 layers) → heads."""

    config_class = TFNConfig

    def __init__(self, feat_dims, num_classes, cfg, feat_levels=None):
        super().__init__(feat_dims, num_classes, cfg, feat_levels)
        n, d = len(feat_dims), cfg.tensor_dim + 1
        self.full = n <= cfg.full_max
        if not self.full:
            self.pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
        tensor_size = d ** n if self.full else (n * (n - 1) // 2) * d * d
        self.project = nn.Linear(cfg.hidden_dim, cfg.tensor_dim)
        self.post_fusion = nn.Sequential(SampleDropout(cfg.dropout), nn.Linear(tensor_size, cfg.fusion_dim), nn.ReLU(),
                                         nn.Linear(cfg.fusion_dim, cfg.fusion_dim), nn.ReLU())
        self.head = nn.Linear(cfg.fusion_dim, num_classes)
        self.valence_head = nn.Linear(cfg.fusion_dim, 1)

    def tensor(self, z):
        """z (B, E, d) → the flattened fusion tensor: full product or the concatenated pairwise products."""
        if self.full:
            product = z[:, 0]
            for m in range(1, z.shape[1]):
                product = (product.unsqueeze(-1) * z[:, m].unsqueeze(1)).flatten(1)
            return product
        z_i, z_j = pair_sides(z, self.pairs)
        return (z_i.unsqueeze(-1) * z_j.unsqueeze(-2)).flatten(1)

    def forward(self, feats, present=None):
        h, fusion, data, expert_logits = self.hidden_stack(feats, present)
        z = self.project(h)
        if fusion is not None:
            z = z * fusion.unsqueeze(-1)
        z = torch.cat([z, torch.ones_like(z[..., :1])], dim=-1)
        fused = self.post_fusion(self.tensor(z))
        return self.outputs(self.head(fused), expert_logits, self.present_weights(h, fusion), self.valence_head(fused), data)

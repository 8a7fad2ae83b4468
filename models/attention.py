"""attention (and attention_topn): the attention fusion of the official MER baselines (MERTools / MERBench,
Lian et al., 2023).

Original: an MLP encoder per modality, an MLP over the concatenated hiddens scores each modality, and the
fused vector is the score-weighted sum of the hiddens. Here one branch per feature (the experts of
``FeatureExpertModel``), and the scores go through a softmax over the *present* features (MERTools uses the
raw scores), so an absent feature gets exactly zero weight. ``attention_topn`` in MERTools is the same model
on the top-N features of each modality: that selection is ``train.py --feat_topn N``, so both names build
this class.
"""
import dataclasses

import torch
import torch.nn as nn

from models import register_model
from models.hparams import ExpertConfig, count
from models.fusion_parts import FusionBaseline
from models.noise import SampleDropout


@dataclasses.dataclass
class AttentionConfig(ExpertConfig):
    attention_dim: int = count(128, "width of the MLP that scores the features from their concatenated hiddens", search=[64, 128, 256])


@register_model("attention")
@register_model("attention_topn")
class Attention(FusionBaseline):
    """Scores (B, E) = MLP(concatenated hiddens); fused = Σ softmax(scores) × hidden → class and valence heads."""

    config_class = AttentionConfig

    def __init__(self, feat_dims, num_classes, cfg, feat_levels=None):
        super().__init__(feat_dims, num_classes, cfg, feat_levels)
        self.score = nn.Sequential(nn.Linear(cfg.hidden_dim * len(feat_dims), cfg.attention_dim), nn.ReLU(),
                                   SampleDropout(cfg.dropout), nn.Linear(cfg.attention_dim, len(feat_dims)))
        self.head = nn.Linear(cfg.hidden_dim, num_classes)
        self.valence_head = nn.Linear(cfg.hidden_dim, 1)

    def forward(self, feats, present=None):
        h, fusion, data, expert_logits = self.hidden_stack(feats, present)
        scores = self.score(h.flatten(1))
        if fusion is not None:
            scores = scores.masked_fill(~fusion, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        fused = (h * weights.unsqueeze(-1)).sum(dim=1)
        return self.outputs(self.head(fused), expert_logits, weights, self.valence_head(fused), data)

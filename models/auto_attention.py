"""Attention-weighted fusion of expert hiddens, for any number of features."""
import dataclasses

import torch
import torch.nn as nn

from models import register_model
from models.base import FeatureExpertModel
from models.hparams import ExpertConfig, count, hparam
from models.noise import SampleDropout, sample_transformer


@dataclasses.dataclass
class AutoAttentionConfig(ExpertConfig):
    hidden_dim: int = count(128, "width of every expert's hidden vector (also the width of the attention over expert tokens)",
                            search=[64, 128, 256])
    input_dropout: float = hparam(0.7, "dropout on the (standardised) input features: the strongest regulariser here",
                                  min=0, max=1, max_open=True, search=(0.3, 0.9))
    heads: int = count(4, "attention heads over the set of expert tokens of one sample", divides="hidden_dim", search=[2, 4, 8])
    attn_layers: int = count(1, "transformer layers over the expert tokens", search=(1, 2))
    # redeclared with their search spaces (tune.py); defaults and help as in ExpertConfig
    dropout: float = hparam(0.3, "dropout inside experts and heads", min=0, max=1, max_open=True, search=(0.0, 0.5))


@register_model("auto_attention")
class AutoAttention(FeatureExpertModel):
    """Expert hiddens become a set of tokens (one per feature, plus a learned feature embedding); a small
    transformer runs over the tokens *of one sample*, and a learned query pools them by attention.
    Tokens of absent experts are masked as keys and get zero pooling weight."""

    config_class = AutoAttentionConfig

    def __init__(self, feat_dims, num_classes, cfg, feat_levels=None):
        super().__init__(feat_dims, num_classes, cfg, feat_levels)
        width = cfg.hidden_dim
        self.feature_embedding = nn.Parameter(torch.zeros(len(feat_dims), width))
        self.mixer = sample_transformer(width, cfg.heads, cfg.attn_layers, cfg.dropout)
        self.pool_score = nn.Linear(width, 1)
        self.head = nn.Sequential(nn.LayerNorm(width), SampleDropout(cfg.dropout), nn.Linear(width, num_classes))
        self.valence_head = nn.Linear(width, 1)

    def forward(self, feats, present=None):
        data, fusion = self.presence(feats, present)
        hiddens, expert_logits = self.encode(feats)
        tokens = torch.stack([hiddens[name] for name in self.feat_names], dim=1) + self.feature_embedding  # (B, E, H)
        if fusion is None:
            tokens = self.mixer(tokens)
            scores = self.pool_score(tokens).squeeze(-1)
        else:
            tokens = self.mixer(tokens * fusion.unsqueeze(-1), src_key_padding_mask=~fusion)
            scores = self.pool_score(tokens).squeeze(-1).masked_fill(~fusion, float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # (B, E)
        pooled = (tokens * weights.unsqueeze(-1)).sum(dim=1)
        return {
            "logits": self.head(pooled),
            "expert_logits": expert_logits,
            "gate": weights,
            "valence": self.valence_head(pooled).squeeze(-1),
            "present": data,
        }

"""Attention-weighted fusion of expert hiddens, for any number of features."""
import torch
import torch.nn as nn

from models import register_model
from models.base import FeatureExpertModel
from models.noise import SampleDropout, sample_transformer


@register_model("auto_attention")
class AutoAttention(FeatureExpertModel):
    """Expert hiddens become a set of tokens (one per feature, plus a learned feature embedding); a small
    transformer runs over the tokens *of one sample*, and a learned query pools them by attention.
    Tokens of absent experts are masked as keys and get zero pooling weight."""

    def __init__(self, feat_dims, num_classes, hidden_dim, expert_layers, dropout, input_dropout, aux_weight, heads, attn_layers,
                 **expert_options):
        super().__init__(feat_dims, num_classes, hidden_dim, expert_layers, dropout, input_dropout, aux_weight, **expert_options)
        self.feature_embedding = nn.Parameter(torch.zeros(len(feat_dims), hidden_dim))
        self.mixer = sample_transformer(hidden_dim, heads, attn_layers, dropout)
        self.pool_score = nn.Linear(hidden_dim, 1)
        self.head = nn.Sequential(nn.LayerNorm(hidden_dim), SampleDropout(dropout), nn.Linear(hidden_dim, num_classes))
        self.valence_head = nn.Linear(hidden_dim, 1)

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

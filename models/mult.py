"""mult: the Multimodal Transformer (Tsai et al., "Multimodal Transformer for Unaligned Multimodal Language
Sequences", ACL 2019), as in the official MER baselines (MERTools).

Original: for each target modality, crossmodal transformers let its sequence attend to each other
modality's sequence (queries from the target, keys and values from the source, kept fixed across layers);
the outputs of all targets are concatenated and go through a residual MLP to the classifier. Here the
tokens are one per feature: the hidden of its expert (``FeatureExpertModel``) plus a learned feature
embedding. Every feature's token attends to the tokens of all *other* features of the same clip (never
across the batch; absent features are masked as keys, and a learned null key keeps the attention defined
when no other feature is present). The crossmodal weights are shared by all targets (the feature embedding
tells them apart), so the cost grows with E rather than E² pairs.
"""
import dataclasses

import torch
import torch.nn as nn

from models import register_model
from models.hparams import ExpertConfig, count
from models.fusion_parts import FusionBaseline
from models.noise import SampleDropout


@dataclasses.dataclass
class MulTConfig(ExpertConfig):
    heads: int = count(4, "attention heads of the crossmodal attention", divides="hidden_dim", search=[1, 2, 4])
    cross_layers: int = count(2, "crossmodal attention layers", search=[1, 2, 3])


class CrossBlock(nn.Module):
    """Pre-norm crossmodal layer: q += Attn(LN(q), LN(source)); q += FFN(LN(q))."""

    def __init__(self, width, heads, dropout):
        super().__init__()
        self.norm_q, self.norm_kv, self.norm_ff = nn.LayerNorm(width), nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(width, 2 * width), nn.ReLU(), SampleDropout(dropout), nn.Linear(2 * width, width))
        self.drop = SampleDropout(dropout)

    def forward(self, q, source, attn_mask, key_padding_mask):
        kv = self.norm_kv(source)
        q = q + self.drop(self.attn(self.norm_q(q), kv, kv, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False)[0])
        return q + self.drop(self.ff(self.norm_ff(q)))


@register_model("mult")
class MulT(FusionBaseline):
    config_class = MulTConfig

    def __init__(self, feat_dims, num_classes, cfg, feat_levels=None):
        super().__init__(feat_dims, num_classes, cfg, feat_levels)
        n, width = len(feat_dims), cfg.hidden_dim
        self.feature_embedding = nn.Parameter(torch.randn(n, width) * 0.02)
        self.null_key = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.blocks = nn.ModuleList(CrossBlock(width, cfg.heads, cfg.dropout) for _ in range(cfg.cross_layers))
        self.norm = nn.LayerNorm(width)
        # key 0 is the null key; key m + 1 is feature m, which its own token must not attend to
        self.register_buffer("self_mask", torch.eye(n, n + 1, dtype=torch.bool).roll(1, dims=1), persistent=False)
        self.proj = nn.Sequential(nn.Linear(n * width, n * width), nn.ReLU(), SampleDropout(cfg.dropout), nn.Linear(n * width, n * width))
        self.head = nn.Linear(n * width, num_classes)
        self.valence_head = nn.Linear(n * width, 1)

    def forward(self, feats, present=None):
        h, fusion, data, expert_logits = self.hidden_stack(feats, present)
        tokens = h + self.feature_embedding
        source = torch.cat([self.null_key.expand(h.shape[0], -1, -1), tokens], dim=1)
        padding = None if fusion is None else torch.cat([torch.zeros_like(fusion[:, :1]), ~fusion], dim=1)
        q = tokens
        for block in self.blocks:
            q = block(q, source, self.self_mask, padding)
        q = self.norm(q)
        if fusion is not None:
            q = q * fusion.unsqueeze(-1)
        last = q.flatten(1)
        last = last + self.proj(last)
        return self.outputs(self.head(last), expert_logits, self.present_weights(h, fusion), self.valence_head(last), data)

"""misa: MISA (Hazarika et al., "MISA: Modality-Invariant and -Specific Representations for Multimodal
Sentiment Analysis", ACM MM 2020), as in the official MER baselines (MERTools).

Original: per modality (text, audio, video) an utterance vector u_m; a shared encoder (one for all
modalities) gives the invariant s_m, a private encoder per modality the specific p_m; a transformer over
the six vectors [p..., s...] and their concatenation feed the classifier. Training adds a similarity loss
(CMD between the s_m of every pair of modalities), a difference loss (soft orthogonality of s_m and p_m,
and of every pair of p_m) and a reconstruction loss (a decoder per modality rebuilds u_m from s_m + p_m).
Here one branch per feature: u_m is the hidden of the feature's expert (``FeatureExpertModel``), and the
transformer runs over the 2E vectors of one sample (absent features masked). The three extra losses are
batch statistics, computed in training only (``loss``) over the clips that have the features, and added
with the weights below to the loss of ``FeatureExpertModel``.
"""
import dataclasses

import torch
import torch.nn as nn
import torch.nn.functional as F

from models import register_model
from models.hparams import ExpertConfig, count, hparam
from models.fusion_parts import FusionBaseline, pair_sides
from models.noise import SampleDropout, sample_transformer


@dataclasses.dataclass
class MISAConfig(ExpertConfig):
    heads: int = count(2, "attention heads of the transformer over the 2E shared and private vectors", divides="hidden_dim",
                       search=[1, 2, 4])
    sim_weight: float = hparam(1.0, "weight of the similarity loss (CMD between the shared vectors of feature pairs)", min=0, search=(0.1, 3.0, "log"))
    diff_weight: float = hparam(0.3, "weight of the difference loss (orthogonality of shared/private and private/private)", min=0, search=(0.03, 1.0, "log"))
    recon_weight: float = hparam(1.0, "weight of the reconstruction loss (rebuild each hidden from shared + private)", min=0, search=(0.1, 3.0, "log"))
    cmd_moments: int = count(5, "central moments the CMD similarity loss compares", max=10, search=[3, 5])


def cmd(x, y, w, moments):
    """Central moment discrepancy of x and y (B, P, H) per pair P, each clip weighted by w (B, P) → (P,)."""
    norm = w.sum(0).clamp_min(1e-8).unsqueeze(-1)
    mx, my = (x * w.unsqueeze(-1)).sum(0) / norm, (y * w.unsqueeze(-1)).sum(0) / norm
    dist = lambda a, b: ((a - b).pow(2).sum(-1) + 1e-12).sqrt()  # noqa: E731
    total, cx, cy = dist(mx, my), x - mx, y - my
    for k in range(2, moments + 1):
        total = total + dist((cx.pow(k) * w.unsqueeze(-1)).sum(0) / norm, (cy.pow(k) * w.unsqueeze(-1)).sum(0) / norm)
    return total


def orthogonality(a, b, w):
    """MISA's difference loss of a (B, E, H) and b (B, E, H) per feature: mean squared (centred, unit-row) a_eᵀ b_e."""
    def unit(x):
        centred = (x - (x * w).sum(0) / w.sum(0).clamp_min(1)) * w
        return F.normalize(centred, dim=-1)
    return torch.einsum("beh,bek->ehk", unit(a), unit(b)).pow(2).mean()


@register_model("misa")
class MISA(FusionBaseline):
    config_class = MISAConfig

    def __init__(self, feat_dims, num_classes, cfg, feat_levels=None):
        super().__init__(feat_dims, num_classes, cfg, feat_levels)
        n, width = len(feat_dims), cfg.hidden_dim
        self.shared = nn.Sequential(nn.Linear(width, width), nn.Sigmoid())
        self.private = nn.Parameter(torch.randn(n, width, width) * width ** -0.5)
        self.private_bias = nn.Parameter(torch.zeros(n, width))
        self.recon = nn.Parameter(torch.randn(n, width, width) * width ** -0.5)
        self.mixer = sample_transformer(width, cfg.heads, 1, cfg.dropout)
        self.fusion = nn.Sequential(nn.Linear(2 * n * width, n * width), SampleDropout(cfg.dropout), nn.ReLU())
        self.head = nn.Linear(n * width, num_classes)
        self.valence_head = nn.Linear(n * width, 1)
        self.pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]

    def forward(self, feats, present=None):
        h, fusion, data, expert_logits = self.hidden_stack(feats, present)
        mask = torch.ones(h.shape[:2], dtype=torch.bool, device=h.device) if fusion is None else fusion
        shared = self.shared(h)
        private = torch.sigmoid(torch.einsum("beh,ehk->bek", h, self.private) + self.private_bias)
        tokens = self.mixer(torch.cat([private, shared], dim=1), src_key_padding_mask=~mask.repeat(1, 2))
        fused = self.fusion((tokens * mask.repeat(1, 2).unsqueeze(-1)).flatten(1))
        extra = {}
        if self.training:
            extra["misa"] = (h, shared, private, torch.einsum("beh,ehk->bek", shared + private, self.recon), mask)
        return self.outputs(self.head(fused), expert_logits, self.present_weights(h, fusion), self.valence_head(fused), data, **extra)

    def loss(self, out, labels, *args, **kwargs):
        loss = super().loss(out, labels, *args, **kwargs)
        if "misa" not in out:
            return loss
        h, shared, private, rebuilt, mask = out["misa"]
        w = mask.float().unsqueeze(-1)
        recon = ((rebuilt - h).pow(2).mean(-1) * mask).sum() / mask.sum().clamp_min(1)
        diff = orthogonality(shared, private, w)
        sim = loss.new_zeros(())
        if self.pairs:
            shared_i, shared_j = pair_sides(shared, self.pairs)
            private_i, private_j = pair_sides(private, self.pairs)
            mask_i, mask_j = pair_sides(mask, self.pairs)
            pair_w = (mask_i & mask_j).float()
            sim = cmd(shared_i, shared_j, pair_w, self.cfg.cmd_moments).mean()
            diff = diff + orthogonality(private_i, private_j, pair_w.unsqueeze(-1))
        cfg = self.cfg
        return loss + cfg.sim_weight * sim + cfg.diff_weight * diff + cfg.recon_weight * recon

"""Pieces every feature-expert model shares: input standardisation, the expert encoders and the loss.

Every model maps ``{feature name: (B, C) tensor or (x (B, L, C), valid (B, L)) frames}`` and an optional
presence mask ``{feature name: (B,) bool}`` to a dict with ``logits`` (B, K), ``expert_logits``
{feature: (B, K)}, ``gate`` (B, E), ``valence`` (B,) and ``present`` ((B, E) bool or None).
No layer mixes samples (no batch norm, attention only inside one sample: over its frames or over its
expert tokens), so a sample's prediction does not depend on the rest of its batch or on its padding.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from dataloader.kinds import DEFAULT, kind_named
from models.hparams import ExpertConfig
from models.noise import SampleDropout, sample_rand, sample_transformer


class Standardize(nn.Module):
    """Z-scores a feature with statistics of the training set, kept as buffers so checkpoints carry them."""

    def __init__(self, dim):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, x, rows, chunk=256):
        """Fit on rows ``rows`` of a (M, C) tensor, gathered in chunks so no copy of the set is made."""
        total = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
        total_sq = torch.zeros_like(total)
        for start in range(0, len(rows), chunk):
            part = x.index_select(0, rows[start:start + chunk]).double()
            total += part.sum(0)
            total_sq += (part * part).sum(0)
        mean = total / len(rows)
        var = (total_sq / len(rows) - mean * mean).clamp_min(0)
        self.mean.copy_(mean.to(self.mean))
        self.std.copy_(var.sqrt().clamp_min(1e-6).to(self.std))

    def forward(self, x):
        return torch.addcmul(-self.mean / self.std, x, 1 / self.std)  # (x - mean) / std in one pass over x


class UtteranceExpert(nn.Module):
    """One feature vector → hidden vector: standardise → dropout → [Linear → GELU → LayerNorm → dropout] × layers."""

    def __init__(self, in_dim, hidden_dim, layers, dropout, input_dropout):
        super().__init__()
        self.norm = Standardize(in_dim)
        blocks = [SampleDropout(input_dropout)]
        width = in_dim
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden_dim), nn.GELU(), nn.LayerNorm(hidden_dim), SampleDropout(dropout)]
            width = hidden_dim
        self.encoder = nn.Sequential(*blocks)

    def forward(self, x):
        return self.encoder(self.norm(x))


def sinusoid(length, width, device):
    """(length, width) fixed sinusoidal position encoding (Vaswani et al.); no maximum length to learn."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, width, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / width))
    enc = torch.zeros(length, width, device=device)
    enc[:, 0::2] = torch.sin(position * freq)
    enc[:, 1::2] = torch.cos(position * freq[: width // 2])
    return enc


class TemporalExpert(nn.Module):
    """Frames of one clip → hidden vector: standardise → dropout → Linear → + position → [CLS; frames] →
    transformer encoder (padding masked) → the CLS token's output.

    Attention runs over the frames of one clip only, and padded frames are masked out as keys, so a clip's
    hidden does not depend on how long the other clips of its batch are. A clip without frames (its file is
    missing) still has the CLS token, so the output stays finite; the model masks that expert anyway."""

    def __init__(self, in_dim, hidden_dim, layers, heads, dropout, input_dropout, width=None):
        super().__init__()
        width = width or hidden_dim  # the transformer's width; the output is hidden_dim like every expert's
        self.norm = Standardize(in_dim)
        self.input_dropout = SampleDropout(input_dropout)
        self.project = nn.Linear(in_dim, width)
        self.cls = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.encoder = sample_transformer(width, heads, layers, dropout)
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, hidden_dim), nn.GELU(), nn.LayerNorm(hidden_dim), SampleDropout(dropout))

    def forward(self, frames):
        x, valid = frames
        b, length, _ = x.shape
        h = self.project(self.input_dropout(self.norm(x))) + sinusoid(length, self.cls.shape[-1], x.device)
        h = torch.cat([self.cls.expand(b, -1, -1), h], dim=1)
        padding = torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=x.device), ~valid], dim=1)
        h = self.encoder(h, src_key_padding_mask=padding)
        return self.out(h[:, 0])


EXPERTS = {  # a feature kind's ``expert`` key → (input dim, model config) → its encoder
    "utterance": lambda dim, cfg: UtteranceExpert(dim, cfg.hidden_dim, cfg.expert_layers, cfg.dropout, cfg.input_dropout),
    "temporal": lambda dim, cfg: TemporalExpert(dim, cfg.hidden_dim, cfg.frame_layers, cfg.frame_heads, cfg.dropout,
                                                cfg.frame_input_dropout, cfg.frame_dim),
}


def build_expert(kind, dim, cfg):
    """The encoder for a feature of ``kind`` (dataloader/kinds.py) and input width ``dim``."""
    if kind.expert not in EXPERTS:
        raise ValueError(f"feature kind {kind.name!r} names expert {kind.expert!r}; known experts: {', '.join(EXPERTS)}")
    return EXPERTS[kind.expert](dim, cfg)


class FeatureExpertModel(nn.Module):
    """Base class: one expert (encoder + classifier head) per feature in an ``nn.ModuleDict``.

    ``cfg`` is the model's config (an ``ExpertConfig`` subclass, see models/hparams.py). ``feat_levels`` {feature: kind name} gives each feature's kind (default "utt"), and the kind names
    its expert (``EXPERTS``): "utt" an ``UtteranceExpert``, "frm" a ``TemporalExpert`` (frame_dim wide,
    frame_layers, frame_heads, frame_input_dropout). ``expert_dropout`` p:
    in training, each present expert of each sample is dropped from the fusion with probability p (at least
    one is kept), so the model learns to cope with missing modalities."""

    config_class = ExpertConfig

    def __init__(self, feat_dims, num_classes, cfg, feat_levels=None):
        super().__init__()
        self.cfg = cfg
        self.feat_names = list(feat_dims)
        self.num_classes = num_classes
        self.aux_weight = cfg.aux_weight
        self.expert_dropout = cfg.expert_dropout
        levels = feat_levels or {}
        self.feat_kinds = {name: kind_named(levels.get(name, DEFAULT), f"feat_levels['{name}']") for name in self.feat_names}
        self.experts = nn.ModuleDict({name: build_expert(self.feat_kinds[name], dim, cfg) for name, dim in feat_dims.items()})
        self.expert_heads = nn.ModuleDict({name: nn.Linear(cfg.hidden_dim, num_classes) for name in feat_dims})

    def fit_normalizers(self, feats, rows, present=None):
        """Fit every expert's input standardisation on rows ``rows`` (the training set) of {name: (M, C)}
        (frame features: on every frame of those clips); clips without the feature are left out."""
        for name, expert in self.experts.items():
            x, r = feats[name], rows
            if present is not None and name in present:
                r = r[present[name].index_select(0, r)]
            x, r = self.feat_kinds[name].norm_input(x, r)  # e.g. frames: every frame of those clips
            if len(r):
                expert.norm.fit(x, r)

    def presence(self, feats, present):
        """(data mask, fusion mask), each (B, E) bool in feat_names order or None when nothing is absent.

        The data mask says which clips have each feature; the fusion mask is the data mask after expert
        dropout (training only), with at least one expert kept per clip."""
        if present is None and not (self.training and self.expert_dropout > 0):
            return None, None
        first = self.feat_names[0]
        size = self.feat_kinds[first].batch_size(feats[first])
        if present is None:
            device = next(self.parameters()).device
            data = torch.ones(size, len(self.feat_names), dtype=torch.bool, device=device)
        else:
            data = torch.stack([present[name] for name in self.feat_names], dim=1)
        fusion = data
        if self.training and self.expert_dropout > 0:
            fusion = data & (sample_rand(data.shape, data.device) >= self.expert_dropout)
            lost = ~fusion.any(dim=1, keepdim=True)
            pick = torch.where(data, sample_rand(data.shape, data.device), torch.full(data.shape, -1.0, device=data.device))
            keep_one = torch.zeros_like(data).scatter_(1, pick.argmax(dim=1, keepdim=True), True)
            fusion = fusion | (lost & keep_one)
        return (None if present is None else data), fusion

    def encode(self, feats):
        """Hidden vector and logits of every expert: ({name: (B, H)}, {name: (B, K)})."""
        hiddens = {name: self.experts[name](feats[name]) for name in self.feat_names}
        logits = {name: self.expert_heads[name](h) for name, h in hiddens.items()}
        return hiddens, logits

    def loss(self, out, labels, vals=None, weights=None, val_weight=0.0, label_smoothing=0.0, total=None):
        """Classification loss of the fused output + aux_weight × mean expert loss (+ valence MSE).

        ``out["present"]`` (B, E), when given, restricts each expert's auxiliary loss to the clips that have
        its feature.
        ``weights`` (B,) scales each sample (e.g. lower for pseudo-labels); valence is only fitted on
        finite targets, so splits without valence (NaN) train the classifier alone.
        ``total`` maps every denominator (a sum of weights) to its sum over the whole global batch; in a
        distributed run (``toolkit.distributed.Dist.total``) each rank's loss is then its exact share of the
        global batch's loss. Default: this batch alone.
        """
        total = total or (lambda t: t)
        if weights is None:
            weights = torch.ones(len(labels), device=labels.device)
        norm = total(weights.sum()).clamp_min(1e-8)

        def weighted_ce(logits):
            return (F.cross_entropy(logits, labels, reduction="none", label_smoothing=label_smoothing) * weights).sum() / norm

        loss = weighted_ce(out["logits"])
        if self.aux_weight > 0 and out["expert_logits"]:
            present = out.get("present")
            if present is None:
                aux = torch.stack([weighted_ce(lg) for lg in out["expert_logits"].values()]).mean()
            else:
                # each expert's loss over the clips that have its feature; experts absent from the whole batch
                # do not count in the mean
                terms, counted = [], []
                for i, lg in enumerate(out["expert_logits"].values()):
                    w = weights * present[:, i]
                    w_sum = total(w.sum())
                    ce = F.cross_entropy(lg, labels, reduction="none", label_smoothing=label_smoothing)
                    terms.append((ce * w).sum() / w_sum.clamp_min(1e-8))
                    counted.append(w_sum > 0)
                counted = torch.stack(counted)
                aux = (torch.stack(terms) * counted).sum() / counted.sum().clamp_min(1)
            loss = loss + self.aux_weight * aux
        if val_weight > 0 and vals is not None and "valence" in out:
            has_val = torch.isfinite(vals)
            err = (out["valence"] - torch.nan_to_num(vals)) ** 2 * weights * has_val  # zero where no target
            loss = loss + val_weight * err.sum() / total((weights * has_val).sum()).clamp_min(1e-8)
        return loss

"""Pieces every feature-expert model shares: input standardisation, the expert encoder and the loss.

Every model maps ``{feature name: (B, C) tensor}`` to a dict with
``logits`` (B, K), ``expert_logits`` {feature: (B, K)}, ``gate`` (B, E) and ``valence`` (B,).
No layer mixes samples (no batch norm, attention only inside one sample), so a sample's prediction does
not depend on the rest of its batch.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class Standardize(nn.Module):
    """Z-scores a feature with statistics of the training set, kept as buffers so checkpoints carry them."""

    def __init__(self, dim):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, x, rows, chunk=4096):
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
        return (x - self.mean) / self.std


class UtteranceExpert(nn.Module):
    """One feature vector → hidden vector: standardise → dropout → [Linear → GELU → LayerNorm → dropout] × layers."""

    def __init__(self, in_dim, hidden_dim, layers, dropout, input_dropout):
        super().__init__()
        self.norm = Standardize(in_dim)
        blocks = [nn.Dropout(input_dropout)]
        width = in_dim
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden_dim), nn.GELU(), nn.LayerNorm(hidden_dim), nn.Dropout(dropout)]
            width = hidden_dim
        self.encoder = nn.Sequential(*blocks)

    def forward(self, x):
        return self.encoder(self.norm(x))


class FeatureExpertModel(nn.Module):
    """Base class: one expert (encoder + classifier head) per feature in an ``nn.ModuleDict``."""

    def __init__(self, feat_dims, num_classes, hidden_dim, expert_layers, dropout, input_dropout, aux_weight):
        super().__init__()
        self.feat_names = list(feat_dims)
        self.num_classes = num_classes
        self.aux_weight = aux_weight
        self.experts = nn.ModuleDict(
            {name: UtteranceExpert(dim, hidden_dim, expert_layers, dropout, input_dropout) for name, dim in feat_dims.items()}
        )
        self.expert_heads = nn.ModuleDict({name: nn.Linear(hidden_dim, num_classes) for name in feat_dims})

    def fit_normalizers(self, feats, rows):
        """Fit every expert's input standardisation on rows ``rows`` (the training set) of {name: (M, C)}."""
        for name, expert in self.experts.items():
            expert.norm.fit(feats[name], rows)

    def encode(self, feats):
        """Hidden vector and logits of every expert: ({name: (B, H)}, {name: (B, K)})."""
        hiddens = {name: self.experts[name](feats[name]) for name in self.feat_names}
        logits = {name: self.expert_heads[name](h) for name, h in hiddens.items()}
        return hiddens, logits

    def loss(self, out, labels, vals=None, weights=None, val_weight=0.0, label_smoothing=0.0):
        """Classification loss of the fused output + aux_weight × mean expert loss (+ valence MSE).

        ``weights`` (B,) scales each sample (e.g. lower for pseudo-labels); valence is only fitted on
        finite targets, so splits without valence (NaN) train the classifier alone.
        """
        if weights is None:
            weights = torch.ones(len(labels), device=labels.device)
        norm = weights.sum().clamp_min(1e-8)

        def weighted_ce(logits):
            return (F.cross_entropy(logits, labels, reduction="none", label_smoothing=label_smoothing) * weights).sum() / norm

        total = weighted_ce(out["logits"])
        if self.aux_weight > 0 and out["expert_logits"]:
            aux = torch.stack([weighted_ce(lg) for lg in out["expert_logits"].values()]).mean()
            total = total + self.aux_weight * aux
        if val_weight > 0 and vals is not None and "valence" in out:
            has_val = torch.isfinite(vals)
            if has_val.any():
                err = (out["valence"] - torch.nan_to_num(vals)) ** 2 * weights * has_val
                total = total + val_weight * err.sum() / (weights * has_val).sum().clamp_min(1e-8)
        return total

"""mmim: MMIM (Han et al., "Improving Multimodal Fusion with Hierarchical Mutual Information Maximization
for Multimodal Sentiment Analysis", EMNLP 2021), as in the official MER baselines (MERTools).

Original: modality encoders (text, audio, video) → a fusion network; training maximises mutual information
at the fusion level with a CPC (InfoNCE) term per modality: the fused vector predicts the modality's
vector, and the prediction must pick that clip's vector among the batch's. Here one branch per feature
(the experts of ``FeatureExpertModel``) and one CPC term per feature, over the clips whose feature takes
part in the fusion. The CPC term compares clips of a batch, so it lives in the training loss only; the
prediction itself reads one clip. MMIM's input-level bound (a Gaussian estimate between modality pairs) is
left out.
"""
import dataclasses

import torch
import torch.nn as nn
import torch.nn.functional as F

from models import register_model
from models.hparams import ExpertConfig, count, hparam
from models.fusion_parts import FusionBaseline
from models.noise import SampleDropout


@dataclasses.dataclass
class MMIMConfig(ExpertConfig):
    fusion_dim: int = count(128, "width of the fused vector", search=[64, 128, 256])
    cpc_weight: float = hparam(0.1, "weight of the CPC (InfoNCE) terms between the fused vector and each feature's hidden", min=0, search=(0.01, 1.0, "log"))


@register_model("mmim")
class MMIM(FusionBaseline):
    """fused = MLP(concatenated hiddens) → heads; in training, a linear predictor per feature maps fused to
    that feature's hidden for the CPC terms."""

    config_class = MMIMConfig

    def __init__(self, feat_dims, num_classes, cfg, feat_levels=None):
        super().__init__(feat_dims, num_classes, cfg, feat_levels)
        n = len(feat_dims)
        self.fusion = nn.Sequential(SampleDropout(cfg.dropout), nn.Linear(n * cfg.hidden_dim, cfg.fusion_dim), nn.Tanh(),
                                    nn.Linear(cfg.fusion_dim, cfg.fusion_dim), nn.Tanh())
        self.predict = nn.Parameter(torch.randn(n, cfg.fusion_dim, cfg.hidden_dim) * cfg.fusion_dim ** -0.5)
        self.head = nn.Sequential(SampleDropout(cfg.dropout), nn.Linear(cfg.fusion_dim, num_classes))
        self.valence_head = nn.Linear(cfg.fusion_dim, 1)

    def forward(self, feats, present=None):
        h, fusion, data, expert_logits = self.hidden_stack(feats, present)
        fused = self.fusion(h.flatten(1))
        extra = {}
        if self.training:
            mask = torch.ones(h.shape[:2], dtype=torch.bool, device=h.device) if fusion is None else fusion
            extra["mmim"] = (h, torch.einsum("bf,efh->beh", fused, self.predict), mask)
        return self.outputs(self.head(fused), expert_logits, self.present_weights(h, fusion), self.valence_head(fused), data, **extra)

    def loss(self, out, labels, *args, **kwargs):
        loss = super().loss(out, labels, *args, **kwargs)
        if "mmim" not in out:
            return loss
        h, predicted, mask = out["mmim"]
        scores = torch.einsum("aeh,beh->eab", F.normalize(predicted, dim=-1), F.normalize(h, dim=-1))  # (E, B, B)
        scores = scores.masked_fill(~mask.T.unsqueeze(1), -1e4)  # clips lacking the feature are no negatives (finite: no NaN grads)
        positive = torch.diagonal(scores, dim1=1, dim2=2)  # (E, B)
        nce = (torch.logsumexp(scores, dim=-1) - positive).masked_fill(~mask.T, 0.0)
        counted = mask.T.sum(-1)
        per_feature = nce.sum(-1) / counted.clamp_min(1)
        cpc = (per_feature * (counted > 0)).sum() / (counted > 0).sum().clamp_min(1)
        return loss + self.cfg.cpc_weight * cpc

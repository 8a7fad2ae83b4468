"""lf_dnn: the late-fusion MLP of the official MER baselines (MERTools / MERBench, Lian et al., 2023).

Original: an MLP encoder per modality (audio, text, video), their hiddens concatenated, an MLP classifier
(and a valence head) on the concatenation. Here one branch per feature: the expert encoders of
``FeatureExpertModel`` (utterance MLPs, or temporal encoders for frame features) are the per-feature MLPs;
absent features enter the concatenation as zeros.
"""
import dataclasses

import torch.nn as nn

from models import register_model
from models.hparams import ExpertConfig, count
from models.fusion_parts import FusionBaseline
from models.noise import SampleDropout


@dataclasses.dataclass
class LFDNNConfig(ExpertConfig):
    fusion_dim: int = count(128, "width of the classifier MLP over the concatenated expert hiddens", search=[64, 128, 256])


@register_model("lf_dnn")
class LFDNN(FusionBaseline):
    """Concatenate the feature hiddens → Linear → ReLU → dropout → Linear (classes) and Linear (valence)."""

    config_class = LFDNNConfig

    def __init__(self, feat_dims, num_classes, cfg, feat_levels=None):
        super().__init__(feat_dims, num_classes, cfg, feat_levels)
        self.fusion = nn.Sequential(nn.Linear(cfg.hidden_dim * len(feat_dims), cfg.fusion_dim), nn.ReLU(), SampleDropout(cfg.dropout))
        self.head = nn.Linear(cfg.fusion_dim, num_classes)
        self.valence_head = nn.Linear(cfg.fusion_dim, 1)

    def forward(self, feats, present=None):
        h, fusion, data, expert_logits = self.hidden_stack(feats, present)
        fused = self.fusion(h.flatten(1))
        return self.outputs(self.head(fused), expert_logits, self.present_weights(h, fusion), self.valence_head(fused), data)

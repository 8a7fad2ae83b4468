"""What the field's fusion baselines (lf_dnn, tfn, lmf, misa, mmim, mult, attention) share: the expert
hiddens of one sample as a (B, E, H) stack with absent experts zeroed, a gate over the present experts,
and the output dict of ``models.base``.

The originals have one hand-written branch per modality (audio, text, video); here the experts of
``FeatureExpertModel`` (one per feature, utterance or frame level) play the branches, so every baseline
takes any number of features. An absent expert's hidden is zeroed before fusion, so its input cannot
reach the clip's output.
"""
import torch

from models.base import FeatureExpertModel


class FusionBaseline(FeatureExpertModel):
    """``FeatureExpertModel`` plus the masked hidden stack and the output dict the baselines return."""

    def hidden_stack(self, feats, present):
        """(hiddens (B, E, H) with absent experts zeroed, fusion mask (B, E) or None, data mask, expert logits)."""
        data, fusion = self.presence(feats, present)
        hiddens, expert_logits = self.encode(feats)
        h = torch.stack([hiddens[name] for name in self.feat_names], dim=1)
        if fusion is not None:
            h = h * fusion.unsqueeze(-1)
        return h, fusion, data, expert_logits

    @staticmethod
    def present_weights(h, fusion):
        """(B, E): 1 / (number of present experts) on each present expert, 0 on absent ones."""
        weights = torch.ones(h.shape[:2], device=h.device) if fusion is None else fusion.float()
        return weights / weights.sum(dim=1, keepdim=True).clamp_min(1)

    @staticmethod
    def outputs(logits, expert_logits, gate, valence, data, **extra):
        return {"logits": logits, "expert_logits": expert_logits, "gate": gate, "valence": valence.squeeze(-1),
                "present": data, **extra}


def pair_sides(x, pairs):
    """(x[:, i], x[:, j]) stacked over the feature pairs (i, j). Slices, not an index tensor: the gradient of
    an index with repeats is a scatter-add whose order (and so the result) can vary between runs on a CPU."""
    return tuple(torch.stack([x[:, pair[side]] for pair in pairs], 1) for side in (0, 1))

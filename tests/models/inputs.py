"""Model inputs the model tests share: a few features of both kinds and batches of them."""
import torch

from dataloader import FrameTensor

FEAT_DIMS = {"a-UTT": 10, "au-FRM": 5, "c-UTT": 4}
LEVELS = {"a-UTT": "utt", "au-FRM": "frm", "c-UTT": "utt"}


def random_store(n, seed=1):
    """Packed features of n clips: two utterance tensors and a FrameTensor with T = 1..40."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 41, (n,), generator=g)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(lengths, 0)])
    return {"a-UTT": torch.randn(n, 10, generator=g), "c-UTT": torch.randn(n, 4, generator=g),
            "au-FRM": FrameTensor(torch.randn(int(offsets[-1]), 5, generator=g), offsets)}


def batch(store, rows, max_frames=32):
    from dataloader.batches import select

    return {k: select(v, rows, max_frames) for k, v in store.items()}

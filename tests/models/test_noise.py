"""Per-global-sample noise: the same masks whatever the batch split, with the requested probabilities."""
import pytest
import torch

from models.noise import SampleDropout, global_batch, keep_mask, sample_rand


@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_keep_mask_probability(keep):
    torch.manual_seed(0)
    mask = keep_mask((1000, 777), keep, torch.device("cpu"))
    assert mask.shape == (1000, 777) and mask.dtype == torch.bool
    assert abs(mask.float().mean().item() - keep) < 0.003
    assert abs(mask.float().mean(0).std().item() - (keep * (1 - keep) / 1000) ** 0.5) < 0.003  # columns independent


@pytest.mark.parametrize("draw", [lambda shape: keep_mask(shape, 0.3, torch.device("cpu")),
                                  lambda shape: sample_rand(shape, torch.device("cpu"))])
def test_parts_of_a_global_batch_get_the_rows_of_the_whole(draw):
    torch.manual_seed(1)
    whole = draw((10, 3, 5))
    parts = []
    for offset, rows in [(0, 4), (4, 3), (7, 3)]:  # three "ranks", each drawing from the same seeded stream
        torch.manual_seed(1)
        with global_batch(offset, 10):
            parts.append(draw((rows, 3, 5)))
    assert torch.equal(torch.cat(parts), whole)


def test_sample_dropout_scales_kept_values_and_is_identity_in_eval():
    torch.manual_seed(0)
    drop = SampleDropout(0.7)
    x = torch.ones(400, 500)
    y = drop(x)
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 65536 / round(0.3 * 65536)))
    assert abs(y.mean().item() - 1) < 0.02
    assert torch.equal(drop.eval()(x), x)
    assert torch.equal(SampleDropout(1.0)(x), torch.zeros_like(x))
    with pytest.raises(ValueError, match="dropout probability"):
        SampleDropout(1.5)


def test_a_part_that_overflows_the_global_batch_is_refused():
    with global_batch(8, 10), pytest.raises(ValueError, match="does not fit a global batch of 10"):
        keep_mask((4, 2), 0.5, torch.device("cpu"))

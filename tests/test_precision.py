"""--amp and --compile: CUDA-only mixed precision is a one-line error on CPU; the GPU runs are checked where CUDA exists."""
import pytest
import torch

import train
from toolkit.errors import UserError

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def run(project, *extra):
    return train.run(train.parse_args(project["argv"] + ["--epochs", "3", "--no_plots"] + list(extra)))


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_on_cpu_is_a_user_error(tiny_project, tmp_path, amp):
    with pytest.raises(UserError, match=f"--amp {amp} needs a CUDA device .* use --amp off on CPU"):
        run(tiny_project, "--device", "cpu", "--amp", amp)
    assert not (tmp_path / "run").exists()


@cuda
@pytest.mark.parametrize("extra", [["--amp", "bf16"], ["--amp", "fp16"], ["--compile"], ["--amp", "bf16", "--compile"]])
def test_gpu_precision_and_compile_learn_like_fp32(tiny_project, extra):
    ref = run(tiny_project, "--device", "cuda")
    got = run(tiny_project, "--device", "cuda", *extra)
    assert got["f1"] > 0.5 and abs(got["loss"] - ref["loss"]) < 0.1

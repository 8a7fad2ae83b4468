"""On a GPU, in half precision, the encoders give the features they give on the CPU in float32."""
import numpy as np
import pytest
import torch

from feature_extraction import encoders
from tests.feature_extraction.media import tone

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
INPUTS = {"hubert": [tone(1.0), tone(12.0, f0=300)], "whisper": [tone(1.0), tone(3.0)],
          "bert": ["我很高兴 I am so happy today", "he is angry"],
          "vit": [np.random.default_rng(0).integers(0, 255, (5, 40, 40, 3), dtype=np.uint8)],
          "videomae": [np.random.default_rng(1).integers(0, 255, (20, 40, 40, 3), dtype=np.uint8)]}
CLASSES = {"hubert": encoders.AudioEncoder, "whisper": encoders.AudioEncoder, "bert": encoders.TextEncoder,
           "vit": encoders.ImageEncoder, "videomae": encoders.VideoEncoder}


@pytest.mark.parametrize("kind", sorted(INPUTS))
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_gpu_half_precision_matches_cpu_float32(checkpoints, kind, dtype):
    def features(device, precision):
        ex = CLASSES[kind](checkpoints[kind], levels=("FRM",), device=torch.device(device), dtype=precision)
        return [out["FRM"] for out in ex.encode([ex.prepare(x) for x in INPUTS[kind]])]

    for cpu, gpu in zip(features("cpu", "float32"), features("cuda", dtype)):
        assert cpu.shape == gpu.shape and gpu.dtype == np.float32
        cosine = (cpu * gpu).sum(1) / (np.linalg.norm(cpu, axis=1) * np.linalg.norm(gpu, axis=1))
        assert cosine.min() > 0.99, cosine.min()

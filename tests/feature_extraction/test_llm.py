"""Multimodal LLM features (Qwen2-Audio, InternVL): tiny random checkpoints saved as the published ones are
(generation class, processor or tokenizer + image processor) and loaded through the real path."""
import os
import sys

import numpy as np
import pytest
import torch

import extract
from feature_extraction.llm import check_device_map, pad_right
from feature_extraction.llm_audio import AudioLLMEncoder
from feature_extraction.llm_video import VideoLLMEncoder, frame_index
from tests.bad_inputs.helpers import run_main
from tests.feature_extraction.media import tone, write_release
from toolkit.errors import UserError

HIDDEN = 32


@pytest.fixture(scope="module")
def llms(tmp_path_factory):
    from preprocess.make_demo_encoders import build_encoder

    root = tmp_path_factory.mktemp("llms")
    return {kind: build_encoder(kind, str(root / kind), hidden=HIDDEN, layers=2) for kind in ("qwen2-audio", "internvl")}


def run(extractor, inputs):
    return extractor.encode([extractor.prepare(x) for x in inputs])


def frames(count, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (count, 40, 50, 3), dtype=np.uint8)


def audio_llm(llms, **kwargs):
    return AudioLLMEncoder(llms["qwen2-audio"], levels=("FRM", "UTT"), batch_size=4, **kwargs)


def video_llm(llms, **kwargs):
    return VideoLLMEncoder(llms["internvl"], levels=("FRM", "UTT"), batch_size=4, **kwargs)


@pytest.mark.parametrize("kind", ["qwen2-audio", "internvl"])
def test_every_saved_weight_is_loaded(llms, kind):
    """The folders hold the published layout (language_model.model.*, audio_tower.* / vision_tower.*), which
    AutoModel renames on loading; no weight may be left at a fresh random value."""
    from safetensors.numpy import load_file

    saved = load_file(os.path.join(llms[kind], "model.safetensors"))
    assert any(k.startswith("language_model.model.") for k in saved)
    ex = (audio_llm if kind == "qwen2-audio" else video_llm)(llms, states="lm")
    loaded = {k: v.numpy() for k, v in ex.model.state_dict().items()}
    renamed = {k.replace("language_model.model.", "language_model."): v for k, v in saved.items() if "lm_head" not in k}
    assert renamed.keys() == loaded.keys() and all(np.array_equal(v, loaded[k]) for k, v in renamed.items())


@pytest.mark.parametrize("states, layers, per_second", [("tower", None, 50), ("tower", "pooled", 25), ("lm", None, 25),
                                                        ("lm", "0,2", 25)])
def test_audio_llm_gives_frames_per_second_and_their_mean(llms, states, layers, per_second):
    # tower layers run at 50 frames/s; its pooled output and the audio tokens of the language model at 25/s
    out = run(audio_llm(llms, states=states, layers=layers), [tone(1.0), tone(2.0, f0=300)])
    assert [o["FRM"].shape for o in out] == [(per_second, HIDDEN), (2 * per_second, HIDDEN)]
    assert out[0]["FRM"].dtype == np.float32
    assert np.allclose(out[1]["UTT"], out[1]["FRM"].mean(0), atol=1e-6)


def test_long_audio_is_cut_into_windows_of_chunk_s(llms):
    ex = audio_llm(llms, states="lm", chunk_s=10.0)
    ids, mels, valid = ex.prepare(tone(12.5))
    assert mels.shape == (2, 128, 3000) and list(valid.sum(1)) == [1000, 250]  # 10 s and 2.5 s in 30 s windows
    assert (ids == ex.audio_token_id).sum() == 250 + 62 and len(ex.encode([(ids, mels, valid)])[0]["FRM"]) == 312
    with pytest.raises(UserError, match="at most 30 s"):
        audio_llm(llms, chunk_s=40.0)


def test_a_clip_gets_the_same_audio_llm_features_alone_or_in_a_batch(llms):
    """Tower: every piece is its own fixed 30 s window, so a batch changes nothing (exactly equal). Lm: the
    clip's tokens are padded on the right in a batch and never attend to the padding; only the rounding of
    the larger matrix products differs (float32, ~1e-7)."""
    clips = [tone(2.0), tone(1.3, f0=180), tone(0.7)]
    tower = audio_llm(llms)
    assert np.array_equal(run(tower, clips[1:2])[0]["FRM"], run(tower, clips)[1]["FRM"])
    lm = audio_llm(llms, states="lm")
    assert np.allclose(run(lm, clips[1:2])[0]["FRM"], run(lm, clips)[1]["FRM"], atol=1e-5)


def test_lm_states_are_the_language_model_states_at_the_audio_tokens(llms):
    ex = audio_llm(llms, states="lm", layers="pooled", prompt="how does the speaker feel?")
    ids, mels, valid = ex.prepare(tone(1.5))
    with torch.inference_mode():
        out = ex.model(input_ids=torch.from_numpy(ids[None]), input_features=torch.from_numpy(mels),
                       feature_attention_mask=torch.from_numpy(valid))
    at_audio = out.last_hidden_state[0, torch.from_numpy(ids == ex.audio_token_id)].numpy()
    assert np.allclose(ex.encode([(ids, mels, valid)])[0]["FRM"], at_audio, atol=1e-6)


def test_the_prompt_changes_the_lm_states_but_not_the_tower_states(llms):
    clip = [tone(1.5)]
    plain, prompted = (run(audio_llm(llms, states="lm", prompt=p), clip)[0]["UTT"] for p in ("", "is the speaker angry?"))
    assert not np.allclose(plain, prompted, atol=1e-4)
    plain, prompted = (run(audio_llm(llms, prompt=p), clip)[0]["UTT"] for p in ("", "is the speaker angry?"))
    assert np.array_equal(plain, prompted)


def test_video_llm_gives_one_row_per_sampled_frame_and_their_mean(llms):
    out = run(video_llm(llms, num_frames=8), [frames(20), frames(3, seed=1)])
    assert out[0]["FRM"].shape == (8, HIDDEN) and out[1]["FRM"].shape == (3, HIDDEN)  # a short clip keeps its 3
    assert np.allclose(out[0]["UTT"], out[0]["FRM"].mean(0), atol=1e-6)
    assert list(frame_index(20, 8)) == [1, 3, 6, 8, 11, 13, 16, 18] and list(frame_index(3, 8)) == [0, 1, 2]


def test_video_llm_states_are_those_of_the_visual_tokens(llms):
    ex = video_llm(llms, layers="pooled", prompt="describe the face")
    ids, pixels = ex.prepare(frames(4))
    assert pixels.shape == (4, 3, 64, 64) and (ids == ex.image_token_id).sum() == 4 * 4  # 4 tokens per 64 px frame
    with torch.inference_mode():
        out = ex.model(input_ids=torch.from_numpy(ids[None]), pixel_values=torch.from_numpy(pixels))
    at_frames = out.last_hidden_state[0, torch.from_numpy(ids == ex.image_token_id)].reshape(4, 4, HIDDEN).mean(1)
    assert np.allclose(ex.encode([(ids, pixels)])[0]["FRM"], at_frames.numpy(), atol=1e-6)


def test_video_llm_features_follow_the_frames_and_the_prompt_not_the_batch(llms):
    ex = video_llm(llms, num_frames=4)
    first, other, batched = run(ex, [frames(6)]), run(ex, [frames(6, seed=5)]), run(ex, [frames(9, seed=2), frames(6)])
    assert not np.allclose(first[0]["UTT"], other[0]["UTT"], atol=1e-4)
    assert np.allclose(first[0]["FRM"], batched[1]["FRM"], atol=1e-5)  # same shapes, only float rounding
    prompted = run(video_llm(llms, num_frames=4, prompt="is this person happy?"), [frames(6)])
    assert not np.allclose(first[0]["UTT"], prompted[0]["UTT"], atol=1e-4)


def test_bad_llm_options_are_one_line_errors(llms):
    with pytest.raises(UserError, match="--modality video_llm offers lm"):
        video_llm(llms, states="tower")
    with pytest.raises(UserError, match=r"is a internvl model \(video_llm\); this extraction needs an audio_llm"):
        AudioLLMEncoder(llms["internvl"])
    with pytest.raises(UserError, match="use one of auto"):
        check_device_map("everywhere")


def test_device_map_without_accelerate_says_what_to_install(llms, monkeypatch):
    monkeypatch.setitem(sys.modules, "accelerate", None)  # as on a machine without the package
    with pytest.raises(UserError) as err:
        audio_llm(llms, device_map="auto")
    assert "pip install accelerate==" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("kind", ["audio", "video"])
def test_a_device_mapped_model_gives_the_same_features(llms, kind):
    """--device_map auto (accelerate places the layers; here all on the CPU) loads and runs like a whole model."""
    make = audio_llm if kind == "audio" else video_llm
    clip = [np.random.default_rng(0).normal(0, 0.1, 16000 * 2).astype(np.float32)] if kind == "audio" else [frames(6)]
    whole, mapped = run(make(llms, states="lm"), clip), run(make(llms, states="lm", device_map="auto"), clip)
    assert np.allclose(whole[0]["FRM"], mapped[0]["FRM"], atol=1e-5)


def test_pad_right_keeps_each_row_at_its_positions():
    ids, mask = pad_right([np.array([5, 6, 7]), np.array([8])], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_extract_py_writes_llm_features_resumes_and_lists_clips_without_audio(llms, tmp_path, capsys):
    data = write_release(str(tmp_path / "release"), ["a1", "a2", "a3", "mute"], audio_less=("mute",))
    argv = ["--data", data, "--modality", "audio_llm", "--model", llms["qwen2-audio"], "--llm_states", "lm",
            "--prompt_text", "emotion?", "--level", "utt", "frm", "--workers", "1", "--no_progress"]
    code, out, err = run_main(extract.main, argv, capsys)
    assert code == 0, err
    feats = os.path.join(data, "features")
    assert sorted(os.listdir(os.path.join(feats, "qwen2-audio-lm-UTT"))) == ["a1.npy", "a2.npy", "a3.npy"]
    assert np.load(os.path.join(feats, "qwen2-audio-lm-UTT", "a1.npy")).shape == (HIDDEN,)
    tokens = np.load(os.path.join(feats, "qwen2-audio-lm-FRM", "a1.npy"))
    assert tokens.shape[1] == HIDDEN and abs(len(tokens) - 25) <= 2  # a 1 s clip (its AAC track runs a little longer)
    assert "lm hidden states" in out and "3 clips written" in out and "mute: no audio stream in mute.mp4" in out
    assert open(os.path.join(feats, "extract-qwen2-audio-lm.failed.csv")).read().splitlines()[1].startswith("mute,")
    code, out, _ = run_main(extract.main, argv, capsys)
    assert code == 0 and "0 clips written" in out and "3 already there" in out


def test_extract_py_writes_video_llm_features_from_whole_frames(llms, tmp_path, capsys):
    data = write_release(str(tmp_path / "release"), ["v1", "v2"])
    code, out, err = run_main(extract.main, ["--data", data, "--modality", "video_llm", "--model", llms["internvl"],
                                             "--faces", "none", "--fps", "4", "--num_frames", "3", "--level", "frm", "utt",
                                             "--workers", "0", "--no_progress"], capsys)
    assert code == 0, err
    assert np.load(os.path.join(data, "features", "internvl-FRM", "v1.npy")).shape == (3, HIDDEN)
    assert np.load(os.path.join(data, "features", "internvl-UTT", "v2.npy")).shape == (HIDDEN,)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("kind, states", [("qwen2-audio", "tower"), ("qwen2-audio", "lm"), ("internvl", "lm")])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_gpu_half_precision_matches_cpu_float32(llms, kind, states, dtype):
    build = audio_llm if kind == "qwen2-audio" else video_llm
    inputs = [tone(1.0), tone(3.0, f0=300)] if kind == "qwen2-audio" else [frames(12), frames(5, seed=1)]

    def features(device, precision):
        return [o["FRM"] for o in run(build(llms, states=states, device=torch.device(device), dtype=precision), inputs)]

    for cpu, gpu in zip(features("cpu", "float32"), features("cuda", dtype)):
        cosine = (cpu * gpu).sum(1) / (np.linalg.norm(cpu, axis=1) * np.linalg.norm(gpu, axis=1))
        assert cpu.shape == gpu.shape and cosine.min() > 0.99, cosine.min()

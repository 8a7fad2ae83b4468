"""Tiny random encoders of every kind, loaded from checkpoint folders through the path real ones take."""
import os
import shutil

import numpy as np
import pytest

from feature_extraction import encoders
from feature_extraction.base import ClipError
from tests.bad_inputs.helpers import run_script
from tests.feature_extraction.media import tone, write_release
from toolkit.errors import UserError

HIDDEN = 16


def frames(count, size=40, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (count, size, size, 3), dtype=np.uint8)


def run(extractor, inputs):
    return extractor.encode([extractor.prepare(x) for x in inputs])


@pytest.mark.parametrize("kind", ["hubert", "wav2vec2", "wavlm", "data2vec-audio", "whisper"])
def test_audio_encoders_give_frames_and_their_mean(checkpoints, kind):
    ex = _audio(checkpoints[kind])
    out = run(ex, [tone(1.0), tone(2.5, f0=300)])
    short, long = out[0]["FRM"], out[1]["FRM"]
    assert short.shape[1] == HIDDEN and long.shape[1] == HIDDEN and short.dtype == np.float32
    assert 2.3 < len(long) / len(short) < 2.7  # frames follow the duration
    assert np.allclose(out[1]["UTT"], long.mean(0), atol=1e-6)


def _audio(path, **kwargs):
    return encoders.AudioEncoder(path, levels=("FRM", "UTT"), batch_size=4, **kwargs)


def test_long_audio_is_cut_into_pieces_and_joined(checkpoints):
    ex = _audio(checkpoints["hubert"], chunk_s=2.0)
    pieces = ex.prepare(tone(5.5))
    assert [n for _, n in pieces] == [32000, 32000, 24000]
    tail = ex.prepare(tone(4.5))  # a 0.5 s tail joins the piece before it
    assert [n for _, n in tail] == [32000, 40000]
    whole = _audio(checkpoints["hubert"], chunk_s=10.0)
    assert abs(len(run(ex, [tone(5.5)])[0]["FRM"]) - len(run(whole, [tone(5.5)])[0]["FRM"])) <= 3


def test_a_clip_gets_the_same_audio_features_alone_or_in_a_batch(checkpoints):
    ex = _audio(checkpoints["hubert"])
    alone = run(ex, [tone(1.3, f0=180)])[0]["UTT"]
    batched = run(ex, [tone(2.0), tone(1.3, f0=180), tone(0.7)])[1]["UTT"]
    assert np.array_equal(alone, batched)


def test_too_short_audio_is_a_clip_error(checkpoints):
    with pytest.raises(ClipError, match="too short"):
        _audio(checkpoints["hubert"]).prepare(np.zeros(100, np.float32))


def test_whisper_takes_at_most_30_s_pieces(checkpoints):
    with pytest.raises(UserError, match="at most 30 s"):
        _audio(checkpoints["whisper"], chunk_s=40)


@pytest.mark.parametrize("kind", ["bert", "roberta", "gpt2"])  # gpt2: a decoder LM
def test_text_encoders_give_tokens_and_their_mean_or_first(checkpoints, kind):
    ex = encoders.TextEncoder(checkpoints[kind], levels=("FRM", "UTT"))
    out = run(ex, ["我很高兴 I am so happy today", ""])
    assert out[0]["FRM"].shape[1] == HIDDEN and len(out[0]["FRM"]) > len(out[1]["FRM"]) >= 2  # [CLS] [SEP]
    assert np.allclose(out[0]["UTT"], out[0]["FRM"].mean(0), atol=1e-6)
    first = encoders.TextEncoder(checkpoints[kind], levels=("UTT",), pool="first")
    alone = run(first, ["我很高兴 I am so happy today"])[0]["UTT"]
    assert np.allclose(alone, out[0]["FRM"][0], atol=1e-5)  # padding in the batch changed nothing


@pytest.mark.parametrize("kind, dim", [("clip", HIDDEN // 2), ("dinov2", HIDDEN), ("vit", HIDDEN)])
def test_image_encoders_give_one_vector_per_frame(checkpoints, kind, dim):
    ex = encoders.ImageEncoder(checkpoints[kind], levels=("FRM", "UTT"), batch_size=3)
    out = run(ex, [frames(5), frames(2, seed=1)])
    assert out[0]["FRM"].shape == (5, dim) and out[1]["FRM"].shape == (2, dim)
    assert np.allclose(out[0]["UTT"], out[0]["FRM"].mean(0), atol=1e-6)
    layered = encoders.ImageEncoder(checkpoints[kind], levels=("FRM",), layers="-1")
    assert run(layered, [frames(2)])[0]["FRM"].shape == (2, HIDDEN)  # first token of the last layer


def test_video_encoder_gives_one_vector_per_segment(checkpoints):
    ex = encoders.VideoEncoder(checkpoints["videomae"], levels=("FRM", "UTT"))
    out = run(ex, [frames(20), frames(3)])  # 8-frame segments: 3, and 1 padded
    assert out[0]["FRM"].shape == (3, HIDDEN) and out[1]["FRM"].shape == (1, HIDDEN)


@pytest.mark.parametrize("text, expected", [("last4", [1, 2]), ("last1", [2]), ("-1", [2]), ("0,2", [0, 2]),
                                            ("pooled", None)])
def test_layers(text, expected):
    # a 2-layer model: the default last4 becomes its two layers; explicit lastK must fit
    assert encoders.parse_layers("last2" if text == "last4" else text, 2) == expected


@pytest.mark.parametrize("text, message", [("last5", "has 2 layers"), ("3", "layer 3 does not exist"),
                                           ("top", "use pooled, lastK")])
def test_bad_layers(text, message):
    with pytest.raises(UserError, match=message):
        encoders.parse_layers(text, 2)


def test_a_missing_model_is_one_line_saying_how_to_place_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty local cache: nothing may be downloaded
    for model in (str(tmp_path / "nope"), "TencentGameMate/chinese-hubert-large"):
        with pytest.raises(UserError) as err:
            encoders.AudioEncoder(model)
        assert "\n" not in str(err.value) and model in str(err.value) and "--local-dir" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no config.json"):
        encoders.AudioEncoder(str(tmp_path / "empty"))


def test_a_hub_id_loads_from_the_local_cache_without_network(checkpoints, tmp_path):
    """The cache layout huggingface_hub writes (models--org--name/snapshots/<commit>/, refs/main), read by
    extract.py in a fresh process as a user's would be."""
    repo = tmp_path / "hub" / "models--org--tiny-hubert"
    shutil.copytree(checkpoints["hubert"], repo / "snapshots" / ("0" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    data = write_release(str(tmp_path / "release"), ["c1"])
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "0"}  # offline all the same
    result = run_script("extract.py", "--data", data, "--modality", "audio", "--model", "org/tiny-hubert",
                        "--workers", "0", "--no_progress", env=env)
    assert result.returncode == 0, result.stderr
    assert np.load(os.path.join(data, "features", "tiny-hubert-UTT", "c1.npy")).shape == (HIDDEN,)


def test_a_model_of_another_kind_is_refused(checkpoints):
    with pytest.raises(UserError, match="is a bert model .text.; this extraction needs an audio encoder"):
        encoders.AudioEncoder(checkpoints["bert"])
    assert encoders.visual_kind(checkpoints["videomae"]) == "video" and encoders.visual_kind(checkpoints["clip"]) == "image"


def test_half_precision_on_the_cpu_is_refused(checkpoints):
    with pytest.raises(UserError, match="needs a GPU"):
        encoders.TextEncoder(checkpoints["bert"], dtype="float16")


@pytest.mark.parametrize("seconds", [0.5, 2.0, 4.5, 5.5, 6.0, 6.9])
@pytest.mark.parametrize("part", [1000, 16000, 70000])
def test_pieces_cut_from_a_stream_are_those_cut_from_the_whole_track(seconds, part):
    wave = tone(seconds)
    streamed = list(encoders._stream_pieces((wave[i:i + part] for i in range(0, len(wave), part)), 32000))
    whole = encoders._pieces(wave, 32000)
    assert [len(p) for p in streamed] == [len(p) for p in whole]
    assert all(np.array_equal(a, b) for a, b in zip(streamed, whole))


def test_a_long_track_is_encoded_piece_by_piece_with_the_same_features(checkpoints, tmp_path, monkeypatch):
    from feature_extraction import decode

    path = str(tmp_path / "long.wav")
    decode.write_wav(path, np.concatenate([tone(3.0, f0=150), tone(4.2, f0=260)]))
    ex = _audio(checkpoints["hubert"], chunk_s=2.0)
    whole = run(ex, [decode.read_audio(path)])[0]  # the waveform at once
    streamed = run(ex, [decode.AudioTrack(path)])[0]  # pieces prepared from the stream
    monkeypatch.setattr(encoders.AudioEncoder, "LONG_S", 5.0)
    long = ex.prepare(decode.AudioTrack(path))
    assert isinstance(long, encoders.LongTrack) and ex.size(long) == pytest.approx(7.2 * 16000, abs=10)
    short = ex.prepare(tone(1.3))
    alone, (in_batch, _) = ex.encode([long])[0], ex.encode([long, short])
    for level in ("FRM", "UTT"):
        np.testing.assert_array_equal(streamed[level], whole[level])
        np.testing.assert_allclose(alone[level], whole[level], atol=1e-5)
        np.testing.assert_allclose(in_batch[level], alone[level], atol=1e-6)
    assert len(alone["FRM"]) == len(whole["FRM"]) > 300

"""preprocess/make_demo_clips.py: layout, decodable media, face crops, OpenFace CSVs, class signal, Haar
detection, determinism and the refusal to write into a foreign folder."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import wave

import av
import cv2
import numpy as np
import pandas as pd
import pytest

from preprocess import make_demo_clips as script
from tests.bad_inputs.helpers import REPO, assert_one_line_error, run_main, snapshot

N = 10


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "clips"
    script.main(["--out", str(out), "--clips", str(N), "--wav", "--seed", "3"])
    with open(out / script.MARKER, encoding="utf-8") as f:
        meta = json.load(f)
    return out, meta["clips"]


def decode(path):
    """(RGB frames, mono float audio or None) of a media file."""
    with av.open(str(path)) as f:
        has_audio = bool(f.streams.audio)
        frames = np.stack([fr.to_ndarray(format="rgb24") for fr in f.decode(video=0)])
    if not has_audio:
        return frames, None
    with av.open(str(path)) as f:
        audio = np.concatenate([fr.to_ndarray().reshape(-1) for fr in f.decode(audio=0)])
    return frames, audio.astype(np.float32) / (32768.0 if audio.dtype == np.int16 else 1.0)


def video_path(out, clip):
    return out / "video" / f"{clip['name']}.{clip['container']}"


def tree_hashes(root):
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(folder, name), "rb") as f:
                files[os.path.relpath(os.path.join(folder, name), root)] = hashlib.sha256(f.read()).hexdigest()
    return files


def test_layout_and_counts(clips):
    out, meta = clips
    names = [c["name"] for c in meta]
    assert len(names) == N == len(set(names)) and all(n.startswith("sample_") and len(n) == 15 for n in names)
    videos = sorted(os.listdir(out / "video"))
    assert sorted(f"{c['name']}.{c['container']}" for c in meta) == videos
    assert sum(v.endswith(".avi") for v in videos) == 2 and sum(not c["audio"] for c in meta) == 1
    assert sorted(os.listdir(out / "audio")) == sorted(f"{n}.wav" for n in names)
    for name in names:
        assert os.path.isfile(out / "openface_face" / name / f"{name}.npy")
        assert os.path.isfile(out / "openface" / f"{name}.csv")
    labels = pd.read_csv(out / script.LABELS_CSV)
    candidates = pd.read_csv(out / script.CANDIDATES_CSV)
    assert list(labels.columns) == ["name", "discrete", "valence"] and list(candidates.columns) == ["name"]
    assert sorted(labels["name"].tolist() + candidates["name"].tolist()) == sorted(names)
    assert len(labels) == round(0.75 * N) and set(labels["discrete"]) <= set(script.CLASSES)
    assert labels["valence"].between(-5, 5).all()
    assert labels.loc[labels.discrete == "happy", "valence"].mean() > labels.loc[labels.discrete == "sad", "valence"].mean()
    subs = pd.read_csv(out / script.SUBTITLE_CSV, keep_default_na=False)
    assert list(subs.columns) == ["name", "chinese", "english"]
    assert len(subs) == N - 1 and (subs["chinese"] == "").sum() == 1 and (subs["english"] == "").sum() == 1


def test_no_wav_by_default(tmp_path):
    out = tmp_path / "clips"
    assert script.main(["--out", str(out), "--clips", "8", "--fps", "12", "--size", "128x96"]) == str(out)
    assert not os.path.exists(out / "audio")
    frames, _ = decode(next((out / "video").glob("*.mp4")))
    assert frames.shape[1:] == (96, 128, 3)


def test_media_decode_with_audio(clips):
    out, meta = clips
    for clip in meta:
        frames, audio = decode(video_path(out, clip))
        assert len(frames) == clip["frames"] and frames.shape[1:] == (120, 160, 3)
        if clip["audio"]:
            assert len(audio) >= script.SAMPLE_RATE and np.abs(audio).max() > 0.01
        else:
            assert audio is None
        with wave.open(str(out / "audio" / f"{clip['name']}.wav")) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
            assert abs(w.getnframes() / 16000 - clip["frames"] / clip["fps"]) < 0.01


def test_face_crops_are_bgr_crops_of_the_frames(clips):
    out, meta = clips
    for clip in meta[:3]:
        faces = np.load(out / "openface_face" / clip["name"] / f"{clip['name']}.npy")
        assert faces.dtype == np.uint8 and faces.shape == (clip["frames"], 112, 112, 3)
        frames, _ = decode(video_path(out, clip))
        _, boxes = script.face_boxes(clip | {"seed": [3, meta.index(clip) + 1]}, (160, 120))
        same, swapped = [], []
        for frame, crop, box in zip(frames, faces, boxes):
            x0, y0, x1, y1 = script.crop_box(box, (160, 120))
            region = cv2.resize(frame[y0:y1, x0:x1], (112, 112)).astype(float)
            same.append(np.abs(region - crop[..., ::-1]).mean())
            swapped.append(np.abs(region - crop).mean())
        assert np.mean(same) < 6 and np.mean(swapped) > np.mean(same) + 5


def test_openface_csv(clips):
    out, meta = clips
    header = ", ".join(script.OPENFACE_HEADER)
    assert header.startswith("frame, face_id, timestamp, confidence, success, gaze_0_x")
    assert header.endswith("AU23_c, AU25_c, AU26_c, AU28_c, AU45_c")
    failed = 0
    for clip in meta:
        with open(out / "openface" / f"{clip['name']}.csv", encoding="utf-8") as f:
            assert f.readline().rstrip("\n") == header
        table = pd.read_csv(out / "openface" / f"{clip['name']}.csv", skipinitialspace=True)
        r = table[[c for c in table.columns if c.endswith("_r")]]
        c = table[[c for c in table.columns if c.endswith("_c")]]
        assert len(table) == clip["frames"] and r.shape[1] == 17 and c.shape[1] == 18
        assert table["frame"].tolist() == list(range(1, clip["frames"] + 1))
        assert r.min().min() >= 0 and r.max().max() <= 5 and set(np.unique(c.values)) <= {0.0, 1.0}
        ok = table["success"] == 1
        assert ((r[ok] > 1).values == c[ok].drop(columns="AU28_c").values).all()
        assert (table.loc[~ok, "confidence"] < 0.5).all()
        failed += (~ok).sum()
    assert failed > 0


def mean_of(meta, emo, value, cue):
    """Mean of ``value`` over the clips whose ``cue`` (face, voice, text) shows class ``emo``."""
    values = [value(c) for c in meta if c["cues"][cue] == emo]
    assert values, emo
    return np.mean(values)


def pitch(samples):
    """Median f0 (Hz) over the loud 40 ms windows, from the autocorrelation peak between 70 and 400 Hz."""
    win = 640
    frames = samples[: len(samples) // win * win].reshape(-1, win)
    loud = frames[np.sqrt((frames**2).mean(1)) > 0.5 * np.sqrt((frames**2).mean(1)).max()]
    f0 = []
    for w in loud:
        ac = np.correlate(w - w.mean(), w - w.mean(), "full")[win - 1:]
        lo, hi = script.SAMPLE_RATE // 400, script.SAMPLE_RATE // 70
        f0.append(script.SAMPLE_RATE / (lo + np.argmax(ac[lo:hi])))
    return np.median(f0)


def test_class_signal(clips):
    out, meta = clips

    def au(name):
        return lambda c: pd.read_csv(out / "openface" / f"{c['name']}.csv", skipinitialspace=True)[name].mean()

    def wav(c):
        with wave.open(str(out / "audio" / f"{c['name']}.wav")) as w:
            return np.frombuffer(w.readframes(w.getnframes()), "<i2") / 32768.0

    assert mean_of(meta, "happy", au("AU12_r"), "face") > mean_of(meta, "sad", au("AU12_r"), "face") + 0.5
    assert mean_of(meta, "sad", au("AU15_r"), "face") > mean_of(meta, "happy", au("AU15_r"), "face") + 0.5
    assert mean_of(meta, "surprise", au("AU26_r"), "face") > mean_of(meta, "neutral", au("AU26_r"), "face") + 0.5
    rms = lambda c: np.sqrt((wav(c) ** 2).mean())  # noqa: E731
    assert mean_of(meta, "angry", rms, "voice") > 2 * mean_of(meta, "sad", rms, "voice")
    assert mean_of(meta, "angry", lambda c: pitch(wav(c)), "voice") > 1.4 * mean_of(meta, "sad", lambda c: pitch(wav(c)), "voice")
    heard = [c for c in meta if c["audio"] and c["cues"]["voice"] in ("angry", "sad")]  # the audio stream of the video too
    louder = {c["cues"]["voice"]: np.sqrt((decode(video_path(out, c))[1] ** 2).mean()) for c in heard}
    assert louder.get("angry", 1) > louder.get("sad", 0)


def test_haar_finds_the_face(clips):
    out, meta = clips
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    seen = total = 0
    for clip in meta:
        frames, _ = decode(video_path(out, clip))
        for frame in frames[::4]:
            seen += len(cascade.detectMultiScale(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), 1.1, 5)) > 0
            total += 1
    assert seen >= 0.8 * total


def test_same_seed_same_bytes(clips, tmp_path):
    """Every file, the videos included: libx264 (one thread, no macroblock tree), AAC and the muxers are
    deterministic here."""
    out, _ = clips
    again = tmp_path / "again"
    script.main(["--out", str(again), "--clips", str(N), "--wav", "--seed", "3"])
    assert tree_hashes(again) == tree_hashes(out)
    assert script.plan_clips(N, 4) != script.plan_clips(N, 3)


def test_video_bytes_do_not_depend_on_stale_heap_memory(tmp_path):
    """An encoder that reads uninitialised memory (libx264's macroblock tree on AVX-512 CPUs did) writes other
    bytes when fresh heap memory holds other garbage: glibc's MALLOC_PERTURB_ fills it with a pattern, so a
    clip written in a process started with it must equal one written without it."""
    code = ("import sys; from preprocess import make_demo_clips as s; "
            "clip = next(c for c in s.plan_clips(8, 3) if c['name'] == 'sample_00003588'); "
            "s.write_video(sys.argv[1], clip, s.render_frames(clip, (160, 120))[0], s.synth_voice(clip))")
    env = {**os.environ, "MALLOC_PERTURB_": "165"}
    paths = [tmp_path / "here.mp4", tmp_path / "perturbed.mp4"]
    subprocess.run([sys.executable, "-c", code, str(paths[0])], cwd=REPO, check=True, timeout=120)
    subprocess.run([sys.executable, "-c", code, str(paths[1])], cwd=REPO, env=env, check=True, timeout=120)
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_rerun_replaces_own_folder_refuses_foreign(clips, tmp_path, capsys):
    out = tmp_path / "clips"
    shutil.copytree(clips[0], out)
    script.main(["--out", str(out), "--clips", "8"])  # its own folder: replaced, no stale clip stays
    assert len(os.listdir(out / "video")) == 8
    foreign = tmp_path / "release"
    (foreign / "video").mkdir(parents=True)
    (foreign / "video" / "mine.mp4").write_bytes(b"not ours")
    before = snapshot(foreign)
    code, _, err = run_main(script.main, ["--out", str(foreign), "--clips", "8"], capsys)
    assert_one_line_error(code, err, str(foreign), "--overwrite", script.MARKER)
    assert snapshot(foreign) == before
    script.main(["--out", str(foreign), "--clips", "8", "--overwrite"])
    assert (foreign / "video" / "mine.mp4").read_bytes() == b"not ours" and (foreign / script.MARKER).exists()


def test_an_interrupted_run_can_be_run_again(tmp_path, monkeypatch):
    out = tmp_path / "clips"
    write_clip = script.write_clip
    written = []

    def interrupted(*args, **kwargs):
        if written:
            raise KeyboardInterrupt
        written.append(write_clip(*args, **kwargs))

    monkeypatch.setattr(script, "write_clip", interrupted)
    with pytest.raises(SystemExit) as stop:  # the CLI wrapper turns Ctrl-C into exit 130
        script.main(["--out", str(out), "--clips", "8"])
    assert stop.value.code == 130 and len(os.listdir(out / "video")) == 1 and not json.load(open(out / script.MARKER))["complete"]
    monkeypatch.setattr(script, "write_clip", write_clip)
    script.main(["--out", str(out), "--clips", "8"])  # no --overwrite needed: the folder is the script's own
    assert len(os.listdir(out / "video")) == 8 and "clips" in json.load(open(out / script.MARKER))


def test_each_cue_shows_the_label_most_of_the_time_but_not_always():
    from preprocess.make_demo_clips import CUES, plan_clips

    plan = plan_clips(300, seed=3)
    for cue in CUES:
        agree = np.mean([c["cues"][cue] == c["class"] for c in plan])
        assert 0.6 < agree < 0.8, (cue, agree)
    assert plan_clips(40, seed=3) == plan_clips(40, seed=3)

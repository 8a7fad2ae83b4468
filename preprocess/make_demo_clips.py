"""Make a few dozen short, real media clips in the MER2025 release layout, for feature extraction end to end.

    python preprocess/make_demo_clips.py                              # data/demo_clips, 48 clips
    python preprocess/make_demo_clips.py --clips 12 --wav --seed 1    # also audio/<name>.wav

Layout written under --out (as the release; names are ``sample_`` + 8 digits):

    video/<name>.mp4        H.264 video + AAC audio (16 kHz mono); 1.5-3 s, 12-25 fps, 160x120.
                            Two clips are .avi (MPEG-4 part 2 video + 16-bit PCM audio), and one .mp4 has
                            no audio stream at all (the extractor must report it).
    audio/<name>.wav        16 kHz mono 16-bit, only with --wav (the extractor must manage without)
    openface_face/<name>/<name>.npy   (T, 112, 112, 3) uint8 face crops, one per video frame, OpenCV BGR
    openface/<name>.csv     what OpenFace 2's FeatureExtraction writes (", " separated, one row per frame):
                            frame, face_id, timestamp, confidence, success, gaze, head pose, 17 AU
                            intensities (_r, 0..5) and 18 AU presences (_c). The 2D/3D landmark, eye
                            landmark and shape-parameter columns of OpenFace are left out.
    subtitle_chieng.csv     name,chinese,english (two empty cells; one clip has no row)
    track1_train_disdim.csv name,discrete,valence   about 3/4 of the clips, the six MER classes
    track_all_candidates.csv name                   the rest
    DEMO_CLIPS.json         what was generated: seed, and per clip its class, fps, frames, file, audio

How the clips are made:
  * frames: the astronaut photo bundled with scikit-image (skimage.data.astronaut, a real frontal face) is
    cut to the head, blended with a soft oval mask onto a noisy plain background, and animated per frame
    (position drift, slight zoom, a little noise); brightness and colour tint depend on the class. OpenCV's
    frontal-face Haar cascade finds the face in the decoded frames;
  * audio: a voiced harmonic source with a moving pitch contour and syllable-like loudness envelope plus a
    little breath noise; pitch, loudness, contour and brightness depend on the class (angry loud and high,
    sad quiet and low, happy high and lively, surprise rising), with per-clip randomness so classes overlap;
  * action units follow FACS (happy AU06+AU12, sad AU01+AU04+AU15, angry AU04+AU05+AU07+AU23, surprise
    AU01+AU02+AU05+AU26, worried AU01+AU02+AU04+AU20, neutral low), rising and falling once per clip, with
    blinks (AU45) and a few frames where tracking failed (success 0, low confidence);
  * subtitles are short sentences whose words hint at the class (some neutral or ambiguous ones).
Same --seed, same bytes for every .npy, .csv and .wav file (and, with this FFmpeg build, the videos too).
"""
import csv
import io
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from toolkit.tables import MER_CLASSES  # noqa: E402
from feature_extraction.base import SAMPLE_RATE  # noqa: E402
from feature_extraction.decode import write_wav  # noqa: E402
from toolkit.errors import ArgumentParser, UserError, bounded, cli  # noqa: E402
from toolkit.io import atomic_path, resolve, save_json, save_text  # noqa: E402

CLASSES = list(MER_CLASSES)
VALENCE_MEAN = {"neutral": 0.0, "angry": -2.6, "happy": 2.8, "sad": -2.9, "worried": -1.6, "surprise": 0.9}
FACE_SIZE = 112
MARKER = "DEMO_CLIPS.json"
GENERATOR = "preprocess/make_demo_clips.py"  # as the marker names it
DEFAULT_OUT = os.path.join("data", "demo_clips")
LABELS_CSV, CANDIDATES_CSV, SUBTITLE_CSV = "track1_train_disdim.csv", "track_all_candidates.csv", "subtitle_chieng.csv"
MANAGED = ["video", "audio", "openface_face", "openface", SUBTITLE_CSV, LABELS_CSV, CANDIDATES_CSV, MARKER]

# The head in skimage.data.astronaut() (512x512): rows, cols of a square around the face, and the face box
# (x, y, w, h) inside that square (found by OpenCV's frontal-face cascade on the photo).
HEAD_ROWS, HEAD_COLS = (26, 206), (137, 317)
FACE_IN_HEAD = (40, 40, 95, 95)
HEAD_HEIGHT = 0.8  # head square side as a share of the frame height
# Each modality of a clip shows its labeled class with this probability, else another class, drawn apart for
# the face (frames, crops and action units), the voice and the subtitle: no single cue is always right, and
# fusing them helps, as in real data.
CUE_AGREEMENT = 0.7
CUES = ("face", "voice", "text")

# Per class: RGB gain of the face (tint and brightness).
TINT = {"neutral": (1.0, 1.0, 1.0), "angry": (1.15, 0.9, 0.88), "happy": (1.1, 1.06, 0.95),
        "sad": (0.8, 0.85, 0.98), "worried": (0.92, 0.98, 0.9), "surprise": (1.12, 1.12, 1.12)}
# Per class voice: f0 (Hz), loudness (peak amplitude), pitch range (share of f0), pitch slope over the
# clip (share of f0), harmonic roll-off (higher: darker), syllables per second.
VOICE = {
    "neutral": (165, 0.18, 0.06, 0.0, 1.3, 4.0),
    "angry": (235, 0.5, 0.12, -0.05, 0.9, 5.0),
    "happy": (245, 0.32, 0.25, 0.05, 1.1, 4.8),
    "sad": (125, 0.08, 0.04, -0.1, 1.6, 3.0),
    "worried": (190, 0.15, 0.1, 0.03, 1.4, 4.2),
    "surprise": (215, 0.32, 0.12, 0.45, 1.1, 4.5),
}

AU_R = ["AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12", "AU14", "AU15", "AU17", "AU20",
        "AU23", "AU25", "AU26", "AU45"]
AU_C = AU_R[:16] + ["AU28", "AU45"]
AU_PROFILE = {  # peak intensity of the AUs of each class (FACS prototypes)
    "neutral": {},
    "happy": {"AU06": 2.6, "AU12": 3.2, "AU25": 1.4, "AU10": 0.8},
    "sad": {"AU01": 2.2, "AU04": 2.0, "AU15": 2.3, "AU17": 1.2},
    "angry": {"AU04": 2.9, "AU05": 1.8, "AU07": 2.3, "AU23": 2.1, "AU09": 0.7},
    "surprise": {"AU01": 2.7, "AU02": 2.5, "AU05": 2.2, "AU26": 2.5, "AU25": 1.5},
    "worried": {"AU01": 2.1, "AU02": 1.4, "AU04": 1.9, "AU20": 1.9, "AU14": 0.7},
}
OPENFACE_HEADER = (["frame", "face_id", "timestamp", "confidence", "success"]
                   + [f"gaze_{e}_{a}" for e in (0, 1) for a in "xyz"] + ["gaze_angle_x", "gaze_angle_y"]
                   + ["pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"]
                   + [f"{au}_r" for au in AU_R] + [f"{au}_c" for au in AU_C])

SUBTITLES = {  # (chinese, english) per class, and some that say nothing about it
    "neutral": [("我明天早上九点去公司开会。", "I have a meeting at the office at nine tomorrow."),
                ("这份文件放在桌子上就行。", "Just leave the file on the desk."),
                ("我们下午再讨论这个问题。", "Let's discuss this again in the afternoon.")],
    "angry": [("你凭什么这样对我！", "How dare you treat me like this!"),
              ("我受够了，别再骗我了！", "I've had enough, stop lying to me!"),
              ("这简直太过分了，我很生气！", "This is outrageous, I'm furious!")],
    "happy": [("太好了，我们终于成功了！", "Great, we finally made it!"),
              ("今天真是开心的一天。", "Today is such a happy day."),
              ("谢谢你，这个礼物我太喜欢了！", "Thank you, I love this present!")],
    "sad": [("他走了，再也不会回来了。", "He's gone and he will never come back."),
            ("我真的很难过，什么都不想做。", "I'm so sad, I don't feel like doing anything."),
            ("对不起，都是我的错。", "I'm sorry, it's all my fault.")],
    "worried": [("万一他出了什么事怎么办？", "What if something happened to him?"),
                ("我有点担心，考试会不会不及格。", "I'm a bit worried I might fail the exam."),
                ("这么晚了她还没回来，我很不安。", "It's so late and she's not back, I feel uneasy.")],
    "surprise": [("什么？你怎么会在这里？", "What? How come you're here?"),
                 ("真的吗？我完全没想到！", "Really? I never expected that!"),
                 ("天哪，这是怎么回事？", "Oh my god, what is going on?")],
}
AMBIGUOUS = [("你说什么？", "What did you say?"), ("嗯，我知道了。", "Hm, I see."), ("就这样吧。", "Let's leave it at that."),
             ("你自己看吧。", "See for yourself.")]


# ----------------------------------------------------------------------------------------------------
# The plan: which clip is what
# ----------------------------------------------------------------------------------------------------
def plan_clips(n, seed, fps=None):
    """Per clip: name, class, valence, labeled, fps, frames, container, audio, subtitle state, its own seed.

    Clip i's media depend only on (seed, i) and its plan entry, so the plan decides everything."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    ids = np.sort(rng.choice(np.arange(1, 20000), size=n, replace=False))
    classes = rng.permutation(np.resize(np.arange(len(CLASSES)), n))
    n_labeled = int(round(0.75 * n))
    special = rng.permutation(n)[:6]  # 2 avi, 1 silent, 1 without subtitle row, 2 with an empty cell
    clips = []
    for i in range(n):
        emo = CLASSES[classes[i]]
        rate = int(fps) if fps else int(rng.integers(12, 26))
        seconds = rng.uniform(1.5, 3.0)
        valence = float(np.clip(VALENCE_MEAN[emo] + rng.normal(0.0, 0.8), -5.0, 5.0))
        clips.append({
            "name": f"sample_{ids[i]:08d}", "class": emo, "valence": round(valence, 2), "labeled": i < n_labeled,
            "fps": rate, "frames": max(int(round(seconds * rate)), 2), "container": "mp4", "audio": True,
            "subtitle": "both", "seed": [seed, i + 1], "cues": shown_classes(emo, rng),
        })
    for k in special[:2]:
        clips[k]["container"] = "avi"
    clips[special[2]]["audio"] = False
    clips[special[3]]["subtitle"] = "missing"
    clips[special[4]]["subtitle"] = "no_english"
    clips[special[5]]["subtitle"] = "no_chinese"
    return clips


def shown_classes(emo, rng):
    """The class each modality of a clip shows: its own with probability CUE_AGREEMENT, else another one."""
    others = [c for c in CLASSES if c != emo]
    return {cue: emo if rng.random() < CUE_AGREEMENT else others[int(rng.integers(len(others)))] for cue in CUES}


def clip_rng(clip, stream):
    """An independent random stream per clip and purpose (0 frames, 1 voice, 2 action units, 3 subtitle)."""
    return np.random.default_rng(np.random.SeedSequence([*clip["seed"], stream]))


# ----------------------------------------------------------------------------------------------------
# Frames and face crops
# ----------------------------------------------------------------------------------------------------
def _head_patch():
    """The astronaut's head (RGB float32, square) and a soft oval alpha mask of the same size."""
    from skimage import data

    rows, cols = HEAD_ROWS, HEAD_COLS
    head = data.astronaut()[rows[0]:rows[1], cols[0]:cols[1]].astype(np.float32)
    side = head.shape[0]
    yy, xx = (np.mgrid[:side, :side] + 0.5) / side - 0.5
    r = np.sqrt((xx / 0.42) ** 2 + (yy / 0.5) ** 2)
    alpha = np.clip((1.0 - r) / 0.12, 0.0, 1.0).astype(np.float32)
    return head, alpha


def face_boxes(clip, size):
    """Per frame (x, y, side) of the head square in the frame (ints) and the face box (x, y, w, h) inside it."""
    width, height = size
    rng = clip_rng(clip, 0)
    t = np.arange(clip["frames"]) / clip["fps"]
    phase = rng.uniform(0, 2 * np.pi, 3)
    speed = rng.uniform(0.3, 0.9, 3)
    side = HEAD_HEIGHT * height * (1.0 + 0.05 * np.sin(2 * np.pi * speed[0] * t + phase[0]))
    cx = width / 2 + rng.uniform(-0.06, 0.06) * width + 0.05 * width * np.sin(2 * np.pi * speed[1] * t + phase[1])
    cy = height / 2 + 0.04 * height * np.sin(2 * np.pi * speed[2] * t + phase[2])
    side = np.round(side).astype(int)
    heads = np.stack([np.round(cx - side / 2).astype(int), np.round(cy - side / 2).astype(int), side], axis=1)
    scale = side / (HEAD_ROWS[1] - HEAD_ROWS[0])
    fx, fy, fw, fh = FACE_IN_HEAD
    faces = np.stack([heads[:, 0] + fx * scale, heads[:, 1] + fy * scale, fw * scale, fh * scale], axis=1)
    return heads, faces


def render_frames(clip, size):
    """(T, H, W, 3) uint8 RGB frames of the clip, and the face box of every frame (T, 4: x, y, w, h)."""
    import cv2

    width, height = size
    rng = clip_rng(clip, 0)
    heads, faces = face_boxes(clip, size)
    head, alpha = _head_patch()
    colour = rng.uniform(40, 200, 3).astype(np.float32)
    ramp = np.linspace(-20, 20, width, dtype=np.float32)[None, :, None]
    background = np.clip(colour + ramp + rng.normal(0, 6, (height, width, 3)), 0, 255).astype(np.float32)
    tint = np.array(TINT[clip["cues"]["face"]], dtype=np.float32) * rng.uniform(0.95, 1.05)
    frames = np.empty((clip["frames"], height, width, 3), dtype=np.uint8)
    for t, (x, y, side) in enumerate(heads):
        patch = cv2.resize(head, (side, side), interpolation=cv2.INTER_AREA) * tint
        mask = cv2.resize(alpha, (side, side), interpolation=cv2.INTER_LINEAR)[..., None]
        frame = background.copy()
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + side, width), min(y + side, height)
        sub = (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))
        frame[y0:y1, x0:x1] = mask[sub] * patch[sub] + (1 - mask[sub]) * frame[y0:y1, x0:x1]
        frame += rng.normal(0, 3, frame.shape).astype(np.float32)
        frames[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return frames, faces


def crop_box(face, size):
    """The square (x0, y0, x1, y1) in the frame that a face crop shows: the face box widened by 10%,
    kept inside the frame."""
    width, height = size
    x, y, w, h = face
    side = int(round(1.1 * max(w, h)))
    side = min(side, width, height)
    x0 = int(np.clip(round(x + w / 2 - side / 2), 0, width - side))
    y0 = int(np.clip(round(y + h / 2 - side / 2), 0, height - side))
    return x0, y0, x0 + side, y0 + side


def face_crops(frames, faces):
    """(T, 112, 112, 3) uint8 crops of the face in each frame, in OpenCV BGR order (as the release)."""
    import cv2

    size = (frames.shape[2], frames.shape[1])
    crops = np.empty((len(frames), FACE_SIZE, FACE_SIZE, 3), dtype=np.uint8)
    for t, (frame, face) in enumerate(zip(frames, faces)):
        x0, y0, x1, y1 = crop_box(face, size)
        crops[t] = cv2.resize(frame[y0:y1, x0:x1], (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_LINEAR)[..., ::-1]
    return crops


# ----------------------------------------------------------------------------------------------------
# Voice
# ----------------------------------------------------------------------------------------------------
def synth_voice(clip):
    """Speech-like float32 waveform at 16 kHz, as long as the video: harmonics of a moving f0, syllables."""
    rng = clip_rng(clip, 1)
    f0, loud, spread, slope, rolloff, syllables = VOICE[clip["cues"]["voice"]]
    f0 *= rng.lognormal(0.0, 0.12)
    loud *= rng.lognormal(0.0, 0.25)
    n = int(round(clip["frames"] / clip["fps"] * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    u = t / t[-1]
    wobble = spread * rng.uniform(0.6, 1.4) * np.sin(2 * np.pi * rng.uniform(0.8, 2.0) * t + rng.uniform(0, 6.3))
    contour = f0 * (1.0 + wobble + slope * (u - 0.5) + 0.01 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(contour) / SAMPLE_RATE
    k = np.arange(1, 25)[:, None]
    gains = k.astype(np.float64) ** -rolloff * (k * contour.max() < 0.45 * SAMPLE_RATE)
    source = (gains * np.sin(k * phase)).sum(0) / gains.sum()
    rate = syllables * rng.uniform(0.8, 1.2)
    envelope = np.clip(np.sin(2 * np.pi * rate * t + rng.uniform(0, 6.3)), 0.0, None) ** 0.6
    pause = rng.uniform(0.3, 0.7)  # a short breath pause somewhere in the middle
    envelope *= np.clip(np.abs(u - pause) / 0.06, 0.0, 1.0)
    envelope *= np.clip(np.minimum(t, t[-1] - t) / 0.05, 0.0, 1.0)  # fade in and out
    wave_ = loud * (envelope * source + 0.03 * rng.standard_normal(n))
    peak = np.abs(wave_).max()
    return (wave_ * min(1.0, 0.95 / peak)).astype(np.float32)


# ----------------------------------------------------------------------------------------------------
# Video files
# ----------------------------------------------------------------------------------------------------
CODECS = {"mp4": ("libx264", "aac"), "avi": ("mpeg4", "pcm_s16le")}


def write_video(path, clip, frames, samples):
    """The clip as .mp4 (H.264 + AAC) or .avi (MPEG-4 + PCM), with an audio stream unless samples is None."""
    import av

    video_codec, audio_codec = CODECS[clip["container"]]
    with atomic_path(path) as tmp:
        with av.open(tmp, "w", format=clip["container"]) as out:
            video = out.add_stream(video_codec, rate=clip["fps"])
            video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
            video.codec_context.thread_count = 1
            if video_codec == "libx264":
                # No macroblock-tree rate control: on CPUs with AVX-512, libx264's mbtree code reads
                # uninitialised memory, so the same frames gave different bytes from call to call.
                video.options = {"preset": "veryfast", "crf": "20", "mbtree": "0"}
            else:
                video.bit_rate = 400_000
            audio = None
            if samples is not None:
                audio = out.add_stream(audio_codec, rate=SAMPLE_RATE, layout="mono")
            for frame in frames:
                out.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            out.mux(video.encode(None))
            if audio is not None:
                _encode_audio(out, audio, samples)


def _encode_audio(out, stream, samples):
    import av

    if stream.codec_context.name == "pcm_s16le":
        data, fmt = np.round(samples * 32767).astype(np.int16)[None, :], "s16"
    else:
        data, fmt = samples[None, :].astype(np.float32), "flt"
    frame_size = 1024
    for start in range(0, data.shape[1], frame_size):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, start:start + frame_size]), format=fmt, layout="mono")
        frame.sample_rate, frame.pts = SAMPLE_RATE, start
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


# ----------------------------------------------------------------------------------------------------
# OpenFace CSV, subtitles, labels
# ----------------------------------------------------------------------------------------------------
def action_units(clip):
    """(T, 17) AU intensities in 0..5: the class prototype rising and falling once, baseline, blinks."""
    rng = clip_rng(clip, 2)
    n = clip["frames"]
    u = (np.arange(n) + 0.5) / n
    apex, width = rng.uniform(0.35, 0.65), rng.uniform(0.2, 0.35)
    bump = np.exp(-0.5 * ((u - apex) / width) ** 2)
    strength = rng.uniform(0.5, 1.2)
    au = rng.uniform(0.0, 0.35, len(AU_R)) + 0.15 * np.abs(rng.standard_normal((n, len(AU_R))))
    for name, peak in AU_PROFILE[clip["cues"]["face"]].items():
        au[:, AU_R.index(name)] += strength * peak * bump * rng.uniform(0.8, 1.2)
    t = np.arange(n) / clip["fps"]
    for blink in np.arange(rng.uniform(0.2, 1.0), t[-1] + 1e-9, rng.uniform(1.5, 3.5)):
        au[:, AU_R.index("AU45")] += 3.0 * np.exp(-0.5 * ((t - blink) / 0.06) ** 2)
    return np.clip(au, 0.0, 5.0)


def openface_csv(clip, faces, size):
    """The text of the clip's OpenFace 2 CSV (landmark columns left out)."""
    rng = clip_rng(clip, 2)
    au = np.round(action_units(clip), 2)  # as written, so that AU_c agrees with the written AU_r
    n = clip["frames"]
    failed = np.zeros(n, dtype=bool)
    if rng.random() < 0.3:  # tracking lost for a few frames in some clips
        start = int(rng.integers(0, max(n - 3, 1)))
        failed[start:start + int(rng.integers(1, 4))] = True
    lines = [", ".join(OPENFACE_HEADER)]
    for t in range(n):
        ok = not failed[t]
        gaze = rng.normal(0, 0.08, 2)
        vec = [gaze[0] + 0.02, gaze[1] + 0.1, -1.0, gaze[0] - 0.02, gaze[1] + 0.1, -1.0]
        x, y, w, _ = faces[t]
        pose = [(x + w / 2 - size[0] / 2) * 2.5, (y + w / 2 - size[1] / 2) * 2.5, 520 - 3 * w, *rng.normal(0, 0.05, 3)]
        presence = [au[t, AU_R.index(a)] > 1.0 if a in AU_R else rng.random() < 0.05 for a in AU_C]
        cells = [str(t + 1), "0", f"{t / clip['fps']:.3f}", f"{rng.uniform(0.9, 0.98) if ok else rng.uniform(0.0, 0.1):.2f}",
                 str(int(ok))]
        if not ok:  # OpenFace writes zeros where it lost the face
            vec, gaze, pose, values, presence = [0.0] * 6, [0.0] * 2, [0.0] * 6, [0.0] * len(AU_R), [False] * len(AU_C)
        else:
            values = au[t]
        cells += [f"{v:.6f}" for v in vec] + [f"{v:.3f}" for v in gaze]
        cells += [f"{v:.1f}" for v in pose[:3]] + [f"{v:.3f}" for v in pose[3:]]
        cells += [f"{v:.2f}" for v in values] + [f"{float(p):.2f}" for p in presence]
        lines.append(", ".join(cells))
    return "\n".join(lines) + "\n"


def subtitle_rows(clips):
    """name,chinese,english rows: a sentence hinting at the class (sometimes an ambiguous one)."""
    rows = []
    for clip in clips:
        if clip["subtitle"] == "missing":
            continue
        rng = clip_rng(clip, 3)
        pool = AMBIGUOUS if rng.random() < 0.2 else SUBTITLES[clip["cues"]["text"]]
        chinese, english = pool[int(rng.integers(len(pool)))]
        chinese = "" if clip["subtitle"] == "no_chinese" else chinese
        english = "" if clip["subtitle"] == "no_english" else english
        rows.append([clip["name"], chinese, english])
    return rows


def csv_text(header, rows):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def write_tables(out, clips):
    """Subtitles, labels, candidates and the marker."""
    save_text(os.path.join(out, SUBTITLE_CSV), csv_text(["name", "chinese", "english"], subtitle_rows(clips)))
    labeled = [[c["name"], c["class"], f"{c['valence']:.2f}"] for c in clips if c["labeled"]]
    save_text(os.path.join(out, LABELS_CSV), csv_text(["name", "discrete", "valence"], labeled))
    save_text(os.path.join(out, CANDIDATES_CSV), csv_text(["name"], [[c["name"]] for c in clips if not c["labeled"]]))


# ----------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------
def write_clip(out, clip, size, wav):
    frames, faces = render_frames(clip, size)
    name = clip["name"]
    samples = synth_voice(clip)
    write_video(os.path.join(out, "video", f"{name}.{clip['container']}"), clip, frames, samples if clip["audio"] else None)
    if wav:
        write_wav(os.path.join(out, "audio", f"{name}.wav"), samples)
    face_path = os.path.join(out, "openface_face", name, f"{name}.npy")
    with atomic_path(face_path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, face_crops(frames, faces))
    save_text(os.path.join(out, "openface", f"{name}.csv"), openface_csv(clip, faces, size))


def check_out(out, overwrite):
    """Refuse a folder that holds anything and was not made by this script, unless --overwrite."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out {out} is a file; give a folder")
    if not os.path.isdir(out) or os.path.exists(os.path.join(out, MARKER)) or overwrite:
        return
    held = sorted(os.listdir(out))
    if held:
        shown = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
        raise UserError(f"--out {out} already holds {shown} and is not a demo-clips folder (no {MARKER}); "
                        "choose another --out, or pass --overwrite to write into it anyway")


def clear_old(out):
    """Remove what an earlier run of this script wrote (only in a folder it made), so no stale clip stays."""
    if not os.path.exists(os.path.join(out, MARKER)):
        return
    for item in MANAGED:
        path = os.path.join(out, item)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def parse_size(text):
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--size {text!r} is not WIDTHxHEIGHT, e.g. 160x120") from None
    if width % 2 or height % 2 or height < 72 or width < height:
        raise UserError(f"--size {text}: give even numbers, height >= 72 and width >= height (e.g. 160x120)")
    return width, height


def parse_args(argv):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None,
                        help="output folder (default: data/demo_clips inside the repository)")
    parser.add_argument("--clips", type=bounded(int, 8, 10000), default=48, help="number of clips (at least 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generator: same seed, same files")
    parser.add_argument("--fps", type=bounded(int, 5, 60), default=None,
                        help="frame rate of every clip (default: 12 to 25, drawn per clip)")
    parser.add_argument("--size", default="160x120", help="frame size WIDTHxHEIGHT")
    parser.add_argument("--wav", action="store_true", help="also write audio/<name>.wav (16 kHz mono)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into --out even if it holds files not made by this script")
    return parser.parse_args(argv)


@cli
def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    size = parse_size(args.size)
    # The default folder is inside the repository, wherever the script is run from.
    out = os.path.normpath(args.out if args.out else os.path.relpath(resolve(DEFAULT_OUT)))
    check_out(out, args.overwrite)
    clips = plan_clips(args.clips, args.seed, args.fps)
    clear_old(out)
    # Marked as this script's before the first clip: a rerun after an interruption may write into it again.
    save_json(os.path.join(out, MARKER), {"generator": GENERATOR, "complete": False})
    for clip in clips:
        write_clip(out, clip, size, args.wav)
    write_tables(out, clips)
    meta = {"generator": GENERATOR, "seed": args.seed, "size": list(size), "wav": args.wav,
            "clips": [{k: v for k, v in c.items() if k != "seed"} for c in clips]}
    save_json(os.path.join(out, MARKER), meta)
    labeled = sum(c["labeled"] for c in clips)
    print(f"wrote {len(clips)} clips ({labeled} labeled, {len(clips) - labeled} candidates) to {out} "
          f"in {time.time() - start:.1f} s")
    return out


if __name__ == "__main__":
    main()

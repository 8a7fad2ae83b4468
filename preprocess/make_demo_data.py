"""Make a deterministic synthetic MER-style dataset in exactly the layout users have.

    python preprocess/make_demo_data.py                      # data/demo, 1,500 / 3,000 / 1,000 clips
    python preprocess/make_demo_data.py --scale mer          # data/mer, MER2025-sized, MER feature names
    python preprocess/make_demo_data.py --out data/demo_missing --missing_rate 0.2   # 20% files gone per modality
    python preprocess/make_demo_data.py --structure alt      # data/demo-alt, another class structure (below)

Layout written under --out:

    features/<feature-name>/<sample>.npy   float32 (C,), one per clip (labeled, unlabeled and test);
                                           frame level (demo-au-FRM): float32 (T, C), T = 20..120
    labels.csv             name,discrete,valence   labeled training set
    unlabeled.csv          name                    unlabeled pool
    unlabeled_labels.csv   name,discrete,valence   hidden truth of the pool (only to score pseudo-labels)
    test.csv               name                    test candidates
    test_labels.csv        name,discrete,valence   hidden truth of the test set (only for scoring)
    vlm_answers/<sample>.txt                       simulated VLM answers (--scale demo, unless --no_vlm)
    DEMO_DATA.json                                 what was generated (seed, sizes, features)

How the data is made (a fair, small stand-in for MER2025):
  * classes and prior of MER (neutral 871, angry 822, happy 689, sad 383, worried 462, surprise 146);
  * a 16-d latent "emotion state": each class is a mixture of 2-3 clusters around a class mean
    (so the class structure is nonlinear), plus a per-speaker offset (100 speakers);
  * the latent has a visual, an acoustic and a lexical block; each feature sees its modality's block
    (speech models also the lexical one, the VLM-like feature visual + lexical) through its own
    perception noise, then a random
    nonlinear map tanh(A o + b), a per-speaker identity offset and observation noise. Noise levels give
    features of clearly different strength; independent noise makes them complementary;
  * valence follows the class (happy > 0, angry/sad < 0, neutral ~ 0) plus noise, within -5..5;
  * VLM answers come from a noisy look at the same latent (noise partly shared with the VLM feature),
    biased towards 'worried', in the widely shared Chinese-key JSON format, with realistic mess;
  * demo-au-FRM, 17 AU-like intensities (0..5) over T = 20..120 frames: every AU rises and falls once per
    clip with a class-independent amplitude and width, and the AUs come in three groups whose *order* of
    activation (one of the 3! = 6 orders) is the class (for AU_ORDER_RELIABLE of the clips; the rest get a
    random order) with jittered apex times. The time average of each AU hardly depends on the class, so
    mean pooling loses almost all of it; a temporal model can read the order;
  * --missing_rate r deletes the files of r of the clips per modality (the same clips for every feature of
    a modality, independently per modality; the last modality never removes a clip's last modality).
    Drawn from its own random stream, so the files that remain are byte-identical to a full dataset.

--structure alt makes a structurally different set with the same six classes: four alt-* features of
smaller dims, each noisier, whose perception noise is partly shared (correlated views); the reversed class
prior (surprise most frequent, neutral rarest); 1, 2 or 3 clusters per class; larger speaker effects; no
VLM answers and no frame-level feature. Names start with ``alt_``. The default structure is unchanged.
"""
import io
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from toolkit.tables import MER_CLASSES  # noqa: E402
from toolkit.errors import ArgumentParser, UserError, cli  # noqa: E402
from toolkit.io import resolve  # noqa: E402

CLASSES = list(MER_CLASSES)
# MER2023 labeled-train counts, used as the class prior (in CLASSES order).
PRIOR_COUNTS = {"neutral": 871, "angry": 822, "happy": 689, "sad": 383, "worried": 462, "surprise": 146}
VALENCE_MEAN = {"neutral": 0.0, "angry": -2.6, "happy": 2.8, "sad": -2.9, "worried": -1.6, "surprise": 0.9}

# Latent blocks: which latent dims each modality can see.
LATENT_DIM = 16
BLOCKS = {"visual": range(0, 6), "acoustic": range(6, 11), "lexical": range(11, 16)}
# What a feature can see: speech models also pick up some wording, the VLM reads frames and subtitles.
VIEWS = {
    "video": ["visual"], "audio": ["acoustic"], "speech": ["acoustic", "lexical"], "text": ["lexical"],
    "vlm": ["visual", "lexical"],
}

# name -> (modality in config, view, dim, perception noise). Must agree with config.py (a test checks it).
FEATURES = {
    "demo": {
        "demo-face-UTT": ("video", "video", 128, 1.9),
        "demo-clip-UTT": ("video", "video", 512, 1.0),
        "demo-internvl-UTT": ("video", "vlm", 1024, 1.0),
        "demo-hubert-UTT": ("audio", "speech", 768, 1.4),
        "demo-wav2vec2-UTT": ("audio", "audio", 256, 1.6),
        "demo-roberta-UTT": ("text", "text", 768, 1.0),
        "demo-macbert-UTT": ("text", "text", 64, 1.6),
    },
    "mer": {
        "clip-vit-large-patch14-UTT": ("video", "video", 768, 0.1),
        "InternVL_2_5-UTT": ("video", "vlm", 4096, 0.2),
        "chinese-hubert-large-UTT": ("audio", "speech", 1024, 0.7),
        "whisper-large-v2-UTT": ("audio", "speech", 1280, 0.9),
        "chinese-roberta-wwm-ext-large-UTT": ("text", "text", 1024, 0.2),
    },
}
# Frame-level features: name -> (modality in config, channels). Drawn after every utterance feature from
# their own random streams, so adding them left the utterance features byte-identical.
FRAME_FEATURES = {"demo": {"demo-au-FRM": ("video", 17)}, "mer": {}}
AU_FRAMES = (20, 120)       # T range (inclusive)
AU_GROUP_SIZES = (6, 6, 5)  # AUs of the three groups (a fixed assignment per dataset seed)
AU_APEX = (0.22, 0.5, 0.78)  # apex times (fraction of the clip) of the 1st, 2nd and 3rd group in the order
AU_APEX_JITTER = 0.08       # std of each group's apex time
AU_ORDER_RELIABLE = 0.6     # share of clips whose order follows their class (the rest: a random order)
SCALES = {
    "demo": {"out": os.path.join("data", "demo"), "n_labeled": 1500, "n_unlabeled": 3000, "n_test": 1000, "vlm": True},
    "mer": {"out": os.path.join("data", "mer"), "n_labeled": 7369, "n_unlabeled": 2000, "n_test": 2000, "vlm": False},
}

# Generator knobs (tuned with benchmarks/check_demo_data.py).
CLASS_MEAN_STD = 0.55   # spread of class means (the linearly separable part)
CLUSTER_SPREAD = 1.1   # spread of the 2-3 clusters around their class mean (the nonlinear part)
WITHIN_STD = 1.1      # within-cluster std in the latent
N_SPEAKERS = 100
SPEAKER_LATENT_STD = 0.35
SPEAKER_FEATURE_STD = 0.3
MAP_GAIN = 1.2         # gain of the random tanh map
OBS_NOISE_STD = 0.5    # per-dimension observation noise of every feature
VLM_NOISE = 1.6        # std of the VLM's look at the latent
VLM_SHARED = 0.5       # fraction of the VLM noise shared with the VLM-like feature's perception noise
VLM_WORRIED_BIAS = 1.5  # log-odds added to 'worried' in the VLM scores

# Generator structures (--structure). "default" is the one above; "alt" changes the class structure.
STRUCTURES = {
    "default": {"prior": PRIOR_COUNTS, "clusters": (2, 3), "speaker_latent_std": SPEAKER_LATENT_STD,
                "speaker_feature_std": SPEAKER_FEATURE_STD, "shared_noise": 0.0, "features": None, "prefix": None},
    "alt": {
        "prior": dict(zip(CLASSES, [PRIOR_COUNTS[c] for c in reversed(CLASSES)])),  # reversed prior
        "clusters": (1, 2, 3), "speaker_latent_std": 0.8, "speaker_feature_std": 0.7,
        "shared_noise": 0.6,  # share of each feature's perception noise common to all features
        "features": {
            "alt-face-UTT": ("video", "video", 48, 2.4),
            "alt-vlm-UTT": ("video", "vlm", 192, 2.0),
            "alt-speech-UTT": ("audio", "speech", 96, 2.2),
            "alt-text-UTT": ("text", "text", 80, 2.6),
        },
        "prefix": "alt",
    },
}


def feature_specs(scale, structure="default"):
    """(utterance features, frame features) of a scale and structure: name -> spec, as in FEATURES."""
    own = STRUCTURES[structure]["features"]
    return (FEATURES[scale], FRAME_FEATURES[scale]) if own is None else (own, {})


def class_counts(n, prior=PRIOR_COUNTS):
    """Split n into per-class counts proportional to the prior (largest remainder, deterministic)."""
    p = np.array([prior[c] for c in CLASSES], dtype=float)
    exact = n * p / p.sum()
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    return counts


def _normalise(x, std):
    """Rescale rows of x (centred over rows) so that every latent block has per-dim spread ``std``."""
    x = x - x.mean(0)
    for block in BLOCKS.values():
        cols = list(block)
        x[:, cols] *= std / np.sqrt((x[:, cols] ** 2).mean())
    return x


def make_latent_model(rng, clusters=(2, 3)):
    """Class means and the clusters[k % len(clusters)] cluster centres of class k (centred on the class mean).

    Every latent block gets the same spread, so feature strength depends on the knobs, not on the seed.
    """
    means = _normalise(rng.normal(size=(len(CLASSES), LATENT_DIM)), CLASS_MEAN_STD)
    centers, owner = [], []
    for k in range(len(CLASSES)):
        m = clusters[k % len(clusters)]
        spread = _normalise(rng.normal(size=(m, LATENT_DIM)), CLUSTER_SPREAD) if m > 1 else np.zeros((1, LATENT_DIM))
        centers.append(means[k] + spread)
        owner += [k] * m
    return np.concatenate(centers), np.array(owner)


def view_dims(view):
    return np.array([d for block in VIEWS[view] for d in BLOCKS[block]])


def make_au_frames(rng, y, channels):
    """AU-like (T, channels) intensity sequences whose class lies in the order of the AU groups' apexes."""
    import itertools

    orders = list(itertools.permutations(range(len(AU_GROUP_SIZES))))  # one order per class
    group = np.repeat(np.arange(len(AU_GROUP_SIZES)), AU_GROUP_SIZES)[rng.permutation(channels)]
    n = len(y)
    lengths = rng.integers(AU_FRAMES[0], AU_FRAMES[1] + 1, size=n)
    reliable = rng.random(n) < AU_ORDER_RELIABLE
    random_order = rng.integers(0, len(orders), size=n)
    clips = []
    for i in range(n):
        order = orders[y[i] if reliable[i] else random_order[i]]  # order[p] = the group at position p
        apex_of_group = np.empty(len(AU_GROUP_SIZES))
        apex_of_group[list(order)] = np.array(AU_APEX) + rng.normal(0.0, AU_APEX_JITTER, len(AU_GROUP_SIZES))
        apex = apex_of_group[group] + rng.normal(0.0, 0.03, channels)  # (C,)
        width = 0.08 * rng.uniform(0.8, 1.2)
        amplitude = rng.uniform(1.0, 3.0, channels)
        t = (np.arange(lengths[i]) + 0.5) / lengths[i]
        bumps = amplitude * np.exp(-0.5 * ((t[:, None] - apex) / width) ** 2)
        base = rng.uniform(0.0, 0.3, channels) + 0.3 * np.abs(rng.standard_normal((lengths[i], channels)))
        clips.append(np.clip(bumps + base, 0.0, 5.0).astype(np.float32))
    return clips


def missing_masks(rng, modalities, n, rate):
    """{modality: (n,) bool, True where the clip's files of that modality are deleted}.

    round(rate * n) clips per modality, drawn independently; the last modality only drops clips that still
    have another modality, so no clip loses everything."""
    masks, keeps_some = {}, np.zeros(n, dtype=bool)
    k = int(round(rate * n))
    for j, modality in enumerate(modalities):
        pool = np.arange(n) if j < len(modalities) - 1 else np.flatnonzero(keeps_some)
        mask = np.zeros(n, dtype=bool)
        if k and len(pool):
            mask[rng.choice(pool, size=min(k, len(pool)), replace=False)] = True
        masks[modality] = mask
        keeps_some |= ~mask
    return masks


def sample_latents(rng, sizes, centers, owner, prior=PRIOR_COUNTS, speaker_std=SPEAKER_LATENT_STD):
    """(class of each clip, its set, its speaker, its latent state): labels with the exact prior of each set,
    shuffled; the state is a cluster of the clip's class + within-cluster noise + a speaker offset."""
    labels, sets = [], []
    for part, n in sizes.items():
        lab = np.repeat(np.arange(len(CLASSES)), class_counts(n, prior))
        labels.append(rng.permutation(lab))
        sets += [part] * n
    y = np.concatenate(labels).astype(np.int64)
    n = len(y)
    cluster = np.empty(n, dtype=np.int64)
    for k in range(len(CLASSES)):
        idx = np.flatnonzero(y == k)
        cluster[idx] = rng.choice(np.flatnonzero(owner == k), size=len(idx))
    speaker = rng.integers(0, N_SPEAKERS, size=n)
    speaker_latent = rng.normal(0.0, speaker_std, size=(N_SPEAKERS, LATENT_DIM))
    z = centers[cluster] + rng.normal(0.0, WITHIN_STD, size=(n, LATENT_DIM)) + speaker_latent[speaker]
    return y, np.array(sets), speaker, z


def observe(rng, view, dim, noise, z, speaker, speaker_std=SPEAKER_FEATURE_STD, shared=None):
    """One encoder's (n, dim) features of the latent states ``z`` (its view of them, perception noise, a random
    tanh map, speaker and observation noise), and the unit perception noise it drew.

    ``shared`` = (share c, (n, LATENT_DIM) unit noise common to all features) correlates the features' noise."""
    n, dims = len(z), view_dims(view)
    unit = rng.standard_normal((n, len(dims)))
    if shared is not None:
        c, common = shared
        unit = c * common[:, dims] + np.sqrt(1.0 - c**2) * unit
    A = rng.normal(0.0, MAP_GAIN / np.sqrt(len(dims)), size=(len(dims), dim)).astype(np.float32)
    b = rng.normal(0.0, 0.5, size=dim).astype(np.float32)
    x = np.tanh((z[:, dims] + noise * unit).astype(np.float32) @ A + b)
    x += (speaker_std * rng.standard_normal((N_SPEAKERS, dim), dtype=np.float32))[speaker]
    x += OBS_NOISE_STD * rng.standard_normal((n, dim), dtype=np.float32)
    return x, unit


def generate(scale="demo", seed=0, n_labeled=None, n_unlabeled=None, n_test=None, vlm=None, missing_rate=0.0,
             structure="default"):
    """Generate everything in memory. Returns a dict (see write_dataset for the layout)."""
    spec, form = SCALES[scale], STRUCTURES[structure]
    utt_features, frame_features = feature_specs(scale, structure)
    sizes = {
        "labeled": spec["n_labeled"] if n_labeled is None else n_labeled,
        "unlabeled": spec["n_unlabeled"] if n_unlabeled is None else n_unlabeled,
        "test": spec["n_test"] if n_test is None else n_test,
    }
    vlm = (spec["vlm"] and form["features"] is None) if vlm is None else vlm
    # Independent streams, so e.g. --no_vlm does not change the features.
    root_seq = np.random.SeedSequence(seed)
    streams = root_seq.spawn(4 + len(utt_features))
    rng_model, rng_samples, rng_vlm, rng_names = (np.random.default_rng(s) for s in streams[:4])

    centers, owner = make_latent_model(rng_model, form["clusters"])

    y, sets, speaker, z = sample_latents(rng_samples, sizes, centers, owner, form["prior"], form["speaker_latent_std"])
    n = len(y)

    # Valence: class mean + a latent direction + noise, clipped to -5..5.
    val_mean = np.array([VALENCE_MEAN[c] for c in CLASSES])
    valence = val_mean[y] + 0.4 * z[:, 0] + rng_samples.normal(0.0, 0.6, size=n)
    valence = np.round(np.clip(valence, -5.0, 5.0), 2)

    # Sample names: a random permutation of ids, so sets interleave in id space. Each scale has its own
    # prefix, so the demo's splits can never silently match files of the MER-scale set.
    ids = rng_names.permutation(n)
    prefix = form["prefix"] or ("sample" if scale == "demo" else scale)
    names = np.array([f"{prefix}_{i:08d}" for i in ids])

    features, vlm_noise, shared = {}, None, None
    if form["shared_noise"]:  # its own stream, drawn only by structures that share noise
        common = np.random.default_rng(root_seq.spawn(1)[0]).standard_normal(z.shape)
        shared = (form["shared_noise"], common)
    for (name, (_, view, dim, noise)), stream in zip(utt_features.items(), streams[4:]):
        features[name], unit = observe(np.random.default_rng(stream), view, dim, noise, z, speaker,
                                       form["speaker_feature_std"], shared)
        if view == "vlm":
            vlm_noise = (view_dims(view), unit)

    answers = make_vlm_answers(rng_vlm, z, centers, owner, vlm_noise) if vlm else None
    # Streams spawned after the ones above, so the utterance features do not change.
    frame_streams = root_seq.spawn(len(frame_features))
    for (name, (_, channels)), stream in zip(frame_features.items(), frame_streams):
        features[name] = make_au_frames(np.random.default_rng(stream), y, channels)
    modality_of = {**{f: v[0] for f, v in utt_features.items()}, **{f: v[0] for f, v in frame_features.items()}}
    modalities = list(dict.fromkeys(modality_of.values()))
    missing = missing_masks(np.random.default_rng(root_seq.spawn(1)[0]), modalities, n, missing_rate)
    return {
        "scale": scale, "structure": structure, "seed": seed, "sizes": sizes, "names": names, "sets": sets, "y": y,
        "valence": valence, "speaker": speaker, "features": features, "vlm_answers": answers,
        "modality_of": modality_of, "missing_rate": missing_rate, "missing": missing,
    }


# ----------------------------------------------------------------------------------------------------
# Simulated VLM answers
# ----------------------------------------------------------------------------------------------------
CLASS_ZH = {"neutral": "平静", "angry": "生气", "happy": "开心", "sad": "悲伤", "worried": "担心", "surprise": "惊讶"}
CUES = {
    "neutral": ["面部表情放松", "语调平稳", "字幕内容为日常陈述", "眼神平和"],
    "angry": ["眉头紧锁、目光锐利", "音量提高、语速加快", "字幕中带有指责的语气", "嘴角下压"],
    "happy": ["嘴角上扬、面带笑容", "语调轻快", "字幕内容积极", "眼睛微眯"],
    "sad": ["眼神低垂", "声音低沉、语速缓慢", "字幕中表达了失落", "嘴角下垂"],
    "worried": ["眉头微皱", "语气迟疑", "字幕中表达了对结果的担忧", "频繁眨眼"],
    "surprise": ["眼睛睁大", "音调突然升高", "字幕中出现意外的信息", "嘴巴微张"],
}
LABEL_VARIANTS = {
    "neutral": ["Neutral", "NEUTRAL"], "angry": ["Angry", "anger"], "happy": ["Happy", "happiness"],
    "sad": ["Sad", "sadness"], "worried": ["Worried", "worry", "WORRIED"], "surprise": ["surprised", "Surprise"],
}
OUT_OF_SET = ["contempt", "disgust", "fear", "confused"]
PROSE_BEFORE = ["根据视频、音频和字幕的综合分析，结果如下：\n", "好的，以下是我的分析。\n", "分析结果：\n"]
PROSE_AFTER = ["\n以上分析仅供参考。", "\n如需进一步分析，请提供更多信息。", ""]


def make_vlm_answers(rng, z, centers, owner, vlm_noise):
    """One answer text per sample: noisy posterior over classes, biased to 'worried', messy format."""
    n = len(z)
    noise = rng.normal(0.0, 1.0, size=z.shape)
    if vlm_noise is not None:  # share part of the VLM-like feature's perception noise
        dims, shared = vlm_noise
        noise[:, dims] = VLM_SHARED * shared + np.sqrt(1 - VLM_SHARED**2) * noise[:, dims]
    obs = z + VLM_NOISE * noise
    var = WITHIN_STD**2 + VLM_NOISE**2 + SPEAKER_LATENT_STD**2
    d2 = ((obs[:, None, :] - centers[None]) ** 2).sum(-1) / (2 * var)
    logit = np.full((n, len(CLASSES)), -np.inf)
    for k in range(len(CLASSES)):
        cols = -d2[:, owner == k]
        top = cols.max(1, keepdims=True)
        logit[:, k] = (top + np.log(np.exp(cols - top).sum(1, keepdims=True))).ravel()
    prior = np.array([PRIOR_COUNTS[c] for c in CLASSES], dtype=float)
    logit += np.log(prior / prior.sum())
    logit[:, CLASSES.index("worried")] += VLM_WORRIED_BIAS
    logit = 0.5 * logit  # VLMs are less peaked than a posterior
    prob = np.exp(logit - logit.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    pred = prob.argmax(1)

    u = rng.random((n, 11))  # one column per random decision below
    contrib = rng.dirichlet([3.0, 2.0, 2.0], size=n)
    jitter = rng.uniform(0.7, 1.4, size=(n, len(CLASSES)))
    pick = lambda options, col: options[int(col * len(options))]  # noqa: E731
    answers = []
    for i in range(n):
        label = CLASSES[pred[i]]
        scores = prob[i] * jitter[i] if u[i, 0] < 0.4 else prob[i]  # some answers do not sum to 1
        cue_idx = rng.choice(len(CUES[label]), size=2, replace=False)
        reason = "，".join(CUES[label][j] for j in cue_idx) + f"，综合判断人物的情绪为{CLASS_ZH[label]}。"
        if u[i, 1] < 0.06:  # "Worried", "surprised", "worry", ...
            label = pick(LABEL_VARIANTS[label], u[i, 2])
        malformed = u[i, 3]  # ~1% each: truncated, label outside the classes, empty
        if 0.01 <= malformed < 0.02:
            label = pick(OUT_OF_SET, u[i, 9])
        body = {
            "推理过程": reason,
            "情绪": {c: round(float(s), 2) for c, s in zip(CLASSES, scores)},
            "label": label,
            "贡献度": dict(zip(["视频", "音频", "字幕"], (round(float(c), 2) for c in contrib[i]))),
        }
        text = json.dumps(body, ensure_ascii=False, indent=2 if u[i, 4] < 0.5 else None)
        if u[i, 5] < 0.9:
            text = f"```json\n{text}\n```"
        if u[i, 6] < 0.25:
            text = pick(PROSE_BEFORE, u[i, 7]) + text + pick(PROSE_AFTER, u[i, 8])
        if malformed < 0.01:
            text = text[: int(len(text) * (0.2 + 0.6 * u[i, 10]))]
        elif 0.02 <= malformed < 0.03:
            text = ""
        answers.append(text)
    return answers


# ----------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------
MARKER = "DEMO_DATA.json"
CSV_FILES = ["labels.csv", "unlabeled.csv", "unlabeled_labels.csv", "test.csv", "test_labels.csv"]
MANAGED = ["features", "vlm_answers", *CSV_FILES, MARKER]  # everything this script owns inside --out


def npy_header(shape):
    """The .npy header of a float32 array of ``shape`` (an int: a vector): files are written as header + raw bytes (fast)."""
    buf = io.BytesIO()
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buf.getvalue()


def write_csv(path, header, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(",".join(header) + "\n")
        f.writelines(",".join(row) + "\n" for row in rows)


def write_dataset(data, root):
    """Write the generated data into ``root`` (a fresh folder) in the user layout."""
    names, sets, y, val = data["names"], data["sets"], data["y"], data["valence"]
    n_files = len(names) * len(data["features"])
    with tqdm(total=n_files, desc="features", unit="file", disable=None) as bar:
        for feat, x in data["features"].items():
            folder = os.path.join(root, "features", feat)
            os.makedirs(folder)
            absent = data["missing"][data["modality_of"][feat]]
            header = npy_header(x.shape[1]) if isinstance(x, np.ndarray) else None
            for name, row, gone in zip(names, x, absent):
                if gone:
                    continue
                with open(os.path.join(folder, name + ".npy"), "wb") as f:
                    f.write((header or npy_header(row.shape)) + row.astype("<f4").tobytes())
            bar.update(len(names))

    def labelled(part):
        idx = np.flatnonzero(sets == part)
        return [(names[i], CLASSES[y[i]], f"{val[i] + 0.0:.2f}") for i in idx]

    write_csv(os.path.join(root, "labels.csv"), ["name", "discrete", "valence"], labelled("labeled"))
    for part, stem in [("unlabeled", "unlabeled"), ("test", "test")]:
        write_csv(os.path.join(root, f"{stem}.csv"), ["name"], [(n,) for n in names[sets == part]])
        write_csv(os.path.join(root, f"{stem}_labels.csv"), ["name", "discrete", "valence"], labelled(part))

    if data["vlm_answers"] is not None:
        folder = os.path.join(root, "vlm_answers")
        os.makedirs(folder)
        for name, text in zip(names, data["vlm_answers"]):
            with open(os.path.join(folder, name + ".txt"), "w", encoding="utf-8", newline="") as f:
                f.write(text)

    meta = {
        "generator": "preprocess/make_demo_data.py",
        "scale": data["scale"],
        "seed": data["seed"],
        "sizes": data["sizes"],
        "classes": CLASSES,
        "features": {feat: int(x.shape[1] if isinstance(x, np.ndarray) else x[0].shape[1]) for feat, x in data["features"].items()},
        "vlm_answers": data["vlm_answers"] is not None,
    }
    if data["structure"] != "default":
        meta["structure"] = data["structure"]
    if data["missing_rate"]:
        meta["missing_rate"] = data["missing_rate"]
        meta["missing_clips"] = {m: int(mask.sum()) for m, mask in data["missing"].items()}
    with open(os.path.join(root, MARKER), "w", encoding="utf-8") as f:
        f.write(json.dumps(meta, indent=2) + "\n")


def check_out(out):
    """Refuse to overwrite a folder that holds data this script did not make."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out {out} is a file; give a folder")
    if os.path.isdir(out):
        ours = [m for m in MANAGED if os.path.exists(os.path.join(out, m))]
        if ours and not os.path.exists(os.path.join(out, MARKER)):
            raise UserError(
                f"--out {out} already holds {', '.join(ours)} not made by this script (no {MARKER}); "
                "choose another --out or remove them yourself"
            )


def install(tmp, out):
    """Move the finished dataset from ``tmp`` into ``out``, replacing an older generated one."""
    if not os.path.isdir(out):
        os.replace(tmp, out)
        return
    old = [m for m in MANAGED if os.path.exists(os.path.join(out, m))]
    if old:
        print(f"replacing the generated dataset in {out}: removing old {', '.join(old)}")
        trash = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.old-", dir=os.path.dirname(out))
        for item in old:
            os.replace(os.path.join(out, item), os.path.join(trash, item))
        shutil.rmtree(trash)
    for item in sorted(os.listdir(tmp)):
        os.replace(os.path.join(tmp, item), os.path.join(out, item))
    os.rmdir(tmp)


def summary(data, out, seconds):
    utt_features, frame_features = feature_specs(data["scale"], data["structure"])
    lines = [f"wrote {out} (scale={data['scale']}, structure={data['structure']}, seed={data['seed']}) in {seconds:.1f} s"]
    lines.append(f"  {'set':<10}" + "".join(f"{c:>9}" for c in CLASSES) + f"{'total':>8}")
    for part in data["sizes"]:
        counts = np.bincount(data["y"][data["sets"] == part], minlength=len(CLASSES))
        lines.append(f"  {part:<10}" + "".join(f"{c:>9}" for c in counts) + f"{counts.sum():>8}")
    lines.append("  features (" + os.path.join(out, "features") + "):")
    for feat, (modality, _, dim, _) in utt_features.items():
        lines.append(f"    {feat:<36} {modality:<6} dim={dim}")
    for feat, (modality, channels) in frame_features.items():
        lines.append(f"    {feat:<36} {modality:<6} dim={channels}, frames T={AU_FRAMES[0]}..{AU_FRAMES[1]}")
    if data["missing_rate"]:
        lines.append("  missing files (--missing_rate {}): ".format(data["missing_rate"])
                     + ", ".join(f"{m} {int(mask.sum())} clips" for m, mask in data["missing"].items()))
    lines.append("  labels: " + ", ".join(os.path.join(out, f) for f in CSV_FILES))
    if data["vlm_answers"] is not None:
        lines.append(f"  VLM answers: {os.path.join(out, 'vlm_answers')}/<name>.txt")
    print("\n".join(lines))


def parse_args(argv):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="demo",
                        help="demo: small set with the demo-* features and VLM answers; mer: MER2025-sized set")
    parser.add_argument("--out", default=None,
                        help="output folder (default: data/demo or data/mer inside the repository)")
    parser.add_argument("--structure", choices=sorted(STRUCTURES), default="default",
                        help="default: the MER-like demo; alt: fewer, noisier, correlated features, reversed "
                             "class prior, larger speaker effects (default folder data/<scale>-alt)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generator: same seed, same data")
    parser.add_argument("--n_labeled", type=int, default=None, help="labeled clips (None: by --scale)")
    parser.add_argument("--n_unlabeled", type=int, default=None, help="unlabeled clips (None: by --scale)")
    parser.add_argument("--n_test", type=int, default=None, help="test clips (None: by --scale)")
    parser.add_argument("--no_vlm", action="store_true", help="do not write simulated VLM answers")
    parser.add_argument("--missing_rate", type=float, default=0.0,
                        help="delete the feature files of this share of clips per modality (default 0: none)")
    return parser.parse_args(argv)


@cli
def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    for key in ("n_labeled", "n_unlabeled", "n_test"):
        value = getattr(args, key)
        if value is not None and value < 0:
            raise UserError(f"--{key} must be >= 0, got {value}")
    if not 0.0 <= args.missing_rate < 1.0:
        raise UserError(f"--missing_rate must be in [0, 1), got {args.missing_rate}")
    if args.n_labeled is not None and args.n_labeled < len(CLASSES):
        raise UserError(f"--n_labeled must be at least {len(CLASSES)} (one per class), got {args.n_labeled}")
    # The default folder is the one config.py points at, wherever the script is run from.
    default_out = SCALES[args.scale]["out"] + ("" if args.structure == "default" else f"-{args.structure}")
    out = os.path.normpath(args.out if args.out else os.path.relpath(resolve(default_out)))
    check_out(out)

    vlm = SCALES[args.scale]["vlm"] and not args.no_vlm and STRUCTURES[args.structure]["features"] is None
    data = generate(args.scale, args.seed, args.n_labeled, args.n_unlabeled, args.n_test, vlm=vlm,
                    missing_rate=args.missing_rate, structure=args.structure)
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(out))}.tmp-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the dataset gets normal permissions
    try:
        print(f"generating into temporary folder {os.path.relpath(tmp)}")
        write_dataset(data, tmp)
        install(tmp, out)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)
    summary(data, out, time.time() - start)
    return out


if __name__ == "__main__":
    main()

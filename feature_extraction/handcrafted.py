"""Hand-crafted features that need no network and no accelerator: openSMILE acoustic descriptors and
OpenFace 2 facial action units, head pose and gaze.

Both compute their arrays in ``prepare`` (CPU work, run in the runner's background workers); ``encode``
only hands them on. The ``opensmile`` package is imported on first use, so importing this module is free."""
import contextlib
import os
import shutil
import subprocess

import numpy as np

from feature_extraction.base import LEVELS, SAMPLE_RATE, ClipError, Extractor
from feature_extraction.registry import option, register_extractor
from toolkit.errors import UserError, bounded, did_you_mean

MIN_SECONDS = 0.1  # below this openSMILE's 60 ms pitch window leaves NaN functionals
FUNCTIONALS_S = 300.0  # openSMILE functionals of longer tracks come from pieces this long (smile_stream)

# openSMILE feature set -> (functionals dim "UTT", low-level descriptors dim "FRM")
OPENSMILE_SETS = {
    "eGeMAPSv02": (88, 25),
    "GeMAPSv01b": (62, 18),
    "ComParE_2016": (6373, 65),
}
_SMILE_LEVEL = {"UTT": "Functionals", "FRM": "LowLevelDescriptors"}


def _mono(item):
    """A waveform as float32 (S,); a column or row vector is accepted, NaN or inf is a ClipError."""
    wave = np.asarray(item, dtype=np.float32)
    if wave.ndim == 2 and 1 in wave.shape:
        wave = wave.reshape(-1)
    if wave.ndim != 1:
        raise ClipError(f"expected a mono waveform of shape (S,), got shape {wave.shape}")
    if not np.isfinite(wave).all():
        raise ClipError("audio holds NaN or infinite samples")
    return wave


def _check_length(samples):
    if samples < MIN_SECONDS * SAMPLE_RATE:
        raise ClipError(f"audio too short for openSMILE: {samples / SAMPLE_RATE:.3f} s (< {MIN_SECONDS} s)")


def _check_levels(levels, owner):
    levels = tuple(levels)
    bad = [lv for lv in levels if lv not in LEVELS]
    if not levels or bad:
        raise UserError(f"{owner}: levels must be a non-empty subset of {', '.join(LEVELS)}, got {list(levels)}")
    return levels


@register_extractor("opensmile")
class OpenSmileExtractor(Extractor):
    """openSMILE on a 16 kHz mono waveform: "UTT" = the set's functionals (C,), "FRM" = its low-level
    descriptors (T, C), one row per 10 ms frame. Writes ``<feature_set>-UTT`` / ``<feature_set>-FRM``.

    The track is streamed through openSMILE as it decodes (``feature_extraction.smile_stream``), so memory does
    not grow with its length; functionals of tracks longer than ``functionals_s`` seconds are the length-weighted
    mean of those of ``functionals_s`` pieces. ``whole_clip=True`` keeps the earlier path (the whole waveform
    through ``process_signal``), for comparison."""

    source, modality = "audio_stream", "audio"
    summary = "openSMILE on the audio track, no model: functionals (UTT) and 10 ms low-level descriptors (FRM)"
    options = (
        option("--feature_set", default="eGeMAPSv02", help="openSMILE set: eGeMAPSv02, GeMAPSv01b or ComParE_2016"),
        option("--functionals_s", type=bounded(float, 10.0), default=FUNCTIONALS_S, help="openSMILE: functionals "
               "of longer tracks are the length-weighted mean of those of pieces this long (bounded memory); "
               "shorter tracks get exact ones"),
    )
    utt_is_frame_mean = False  # functionals: means, percentiles, slopes, rates of the descriptors

    @classmethod
    def build(cls, options, levels):
        return cls(feature_set=options.feature_set, levels=levels, functionals_s=options.functionals_s)

    def __init__(self, feature_set="eGeMAPSv02", levels=("UTT",), functionals_s=FUNCTIONALS_S, whole_clip=False):
        if feature_set not in OPENSMILE_SETS:
            hint = did_you_mean(feature_set, OPENSMILE_SETS)
            raise UserError(f"unknown openSMILE feature set {feature_set!r}: known are {', '.join(OPENSMILE_SETS)}"
                            + (f"; {hint}" if hint else ""))
        self.feature_set = feature_set
        self.name = feature_set
        self.levels = _check_levels(levels, f"openSMILE {feature_set}")
        self.functionals_s, self.whole_clip = functionals_s, whole_clip
        self.source = "audio" if whole_clip else "audio_stream"
        self._smiles = None  # built on first use, in whichever process runs prepare

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_smiles"] = None  # rebuilt on the other side of a pickle (worker processes)
        return state

    def smiles(self):
        """{level: opensmile.Smile}, built once and reused for every clip."""
        if self._smiles is None:
            import opensmile

            self._smiles = {lv: opensmile.Smile(feature_set=opensmile.FeatureSet[self.feature_set],
                                                feature_level=opensmile.FeatureLevel[_SMILE_LEVEL[lv]])
                            for lv in self.levels}
        return self._smiles

    def feature_names(self, level="UTT"):
        """Column names of ``level``'s array (e.g. ``loudness_sma3_amean`` for eGeMAPSv02 functionals)."""
        if level not in self.levels:
            raise UserError(f"{self.name}: level {level!r} was not requested (levels: {', '.join(self.levels)})")
        return list(self.smiles()[level].feature_names)

    def prepare(self, item):
        """A waveform (S,) or a stream of pieces (an AudioTrack) → {level: array}."""
        out = self._whole(_mono(item)) if self.whole_clip else self._streamed(item)
        for level, values in out.items():
            if values is None or values.size == 0:
                raise ClipError(f"openSMILE {self.name} gave no {level} frame")
            if not np.isfinite(values).all():
                raise ClipError(f"openSMILE {self.name} gave non-finite {level} values")
        return out

    def _whole(self, wave):
        _check_length(wave.size)
        return {level: smile.process_signal(wave, SAMPLE_RATE).to_numpy(dtype=np.float32)[0 if level == "UTT" else slice(None)]
                for level, smile in self.smiles().items()}

    def _streamed(self, item):
        from feature_extraction.smile_stream import PiecewiseFunctionals, SmileRun

        pieces = [item] if isinstance(item, np.ndarray) else item
        with contextlib.ExitStack() as stack:
            lld = stack.enter_context(SmileRun(self.feature_set, "lld")) if "FRM" in self.levels else None
            functionals = PiecewiseFunctionals(self.feature_set, self.functionals_s) if "UTT" in self.levels else None
            if functionals is not None:
                stack.callback(functionals.abort)
            total = 0
            for piece in pieces:
                piece = _mono(piece)
                total += piece.size
                for run in filter(None, (lld, functionals)):
                    run.write(piece)
            _check_length(total)
            out = {"FRM": lld.close()} if lld is not None else {}
            if functionals is not None:
                out["UTT"] = functionals.close()
        return out

    def size(self, prepared):
        return len(prepared["FRM"]) if "FRM" in prepared else 1

    def dim(self, level):
        return OPENSMILE_SETS[self.feature_set][LEVELS.index(level)]

    def encode(self, batch):
        return [{lv: prepared[lv] for lv in self.levels} for prepared in batch]


# OpenFace 2 column groups, each in the order FeatureExtraction writes them.
_AUS_R = ("01", "02", "04", "05", "06", "07", "09", "10", "12", "14", "15", "17", "20", "23", "25", "26", "45")
_AUS_C = ("01", "02", "04", "05", "06", "07", "09", "10", "12", "14", "15", "17", "20", "23", "25", "26", "28", "45")
OPENFACE_COLUMNS = {
    "au_r": [f"AU{n}_r" for n in _AUS_R],  # 17 intensities, 0..5
    "au_c": [f"AU{n}_c" for n in _AUS_C],  # 18 presences, 0/1
    "pose": ["pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"],  # mm and radians
    "gaze": ["gaze_0_x", "gaze_0_y", "gaze_0_z", "gaze_1_x", "gaze_1_y", "gaze_1_z", "gaze_angle_x", "gaze_angle_y"],
}
OPENFACE_COLUMNS["au"] = OPENFACE_COLUMNS["au_r"] + OPENFACE_COLUMNS["au_c"]
OPENFACE_COLUMNS["all"] = OPENFACE_COLUMNS["au"] + OPENFACE_COLUMNS["pose"] + OPENFACE_COLUMNS["gaze"]


def openface_columns(columns):
    """The column names of a group (``"au"``) or a comma-joined combination (``"au_r,pose"``), in order,
    without repeats."""
    groups = [g.strip() for g in str(columns).split(",")]
    unknown = [g for g in groups if g not in OPENFACE_COLUMNS]
    if unknown:
        raise UserError(f"unknown OpenFace column group {unknown[0]!r} in {columns!r}: known are "
                        f"{', '.join(OPENFACE_COLUMNS)} (or a comma-joined combination such as au_r,pose)")
    return list(dict.fromkeys(name for g in groups for name in OPENFACE_COLUMNS[g]))


def _check_confidence(min_confidence):
    try:
        value = float(min_confidence)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise UserError(f"OpenFace min_confidence must be in [0, 1], got {min_confidence}")
    return value


def _read_openface_table(path):
    import pandas as pd

    try:
        table = pd.read_csv(path, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise ClipError(f"empty OpenFace CSV {path}") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise ClipError(f"cannot read OpenFace CSV {path}: {str(err).splitlines()[0]}") from None
    table.columns = [str(c).strip() for c in table.columns]
    return table


def missing_columns(path, header, columns):
    """Why the OpenFace CSV ``path`` with column names ``header`` cannot give ``columns`` (the groups it does
    hold and the --columns value that works), or None when it can."""
    names = openface_columns(columns)
    missing = [c for c in ["success", "confidence", *names] if c not in header]
    if not missing:
        return None
    held = [g for g in ("au_r", "au_c", "pose", "gaze") if set(OPENFACE_COLUMNS[g]) <= set(header)]
    usable = [g for g in held if set(OPENFACE_COLUMNS[g]) & set(names)] or held  # what was asked, else what is there
    if missing[0] in ("success", "confidence"):
        fix = "it is not a per-frame CSV of OpenFace 2's FeatureExtraction; make it with that tool"
    elif usable:
        fix = f"it holds the column groups {', '.join(held)}: use --columns {','.join(usable)}"
    else:
        fix = "it holds none of the groups au_r, au_c, pose, gaze; make it with FeatureExtraction -aus -pose -gaze"
    return f"OpenFace CSV {path} has no column {missing[0]!r} (--columns {columns}); {fix}"


def parse_openface_csv(path, columns="au", min_confidence=0.8):
    """(T, C) float32 of the ``columns`` of an OpenFace 2 per-frame CSV, keeping the frames OpenFace
    tracked (``success == 1``) with ``confidence >= min_confidence``, in frame order."""
    import pandas as pd

    names = openface_columns(columns)
    min_confidence = _check_confidence(min_confidence)
    table = _read_openface_table(path)
    problem = missing_columns(path, table.columns, columns)
    if problem:
        raise ClipError(problem)
    if "frame" in table.columns:
        table = table.sort_values("frame", kind="stable")
    numeric = table[["success", "confidence", *names]].apply(pd.to_numeric, errors="coerce")
    keep = (numeric["success"] == 1) & (numeric["confidence"] >= min_confidence)
    if not keep.any():
        raise ClipError(f"no frame with success=1 and confidence>={min_confidence:g} in {path}")
    values = numeric.loc[keep, names].to_numpy(dtype=np.float32)
    bad = ~np.isfinite(values)
    if bad.any():
        raise ClipError(f"OpenFace CSV {path} has a non-numeric value in column {names[int(np.argwhere(bad)[0, 1])]!r}")
    return values


@register_extractor("openface")
class OpenFaceExtractor(Extractor):
    """OpenFace 2 per-frame CSV → "FRM" (T, C) of the kept frames and "UTT" their mean (C,). Writes
    ``openface-<columns>-FRM`` / ``-UTT`` (a combination ``au_r,pose`` becomes ``openface-au_r+pose``)."""

    source, modality = "openface", "video"
    summary = "OpenFace 2 per-frame CSVs (--openface_bin makes missing ones): action units, head pose, gaze"
    options = (
        option("--columns", default="au", help="OpenFace columns: au, au_r, au_c, pose, gaze, all, or a comma-joined "
               "mix such as au_r,pose"),
        option("--min_confidence", type=bounded(float, 0.0, 1.0), default=0.8,
               help="OpenFace: frames with success=1 and at least this confidence are kept"),
    )

    @classmethod
    def build(cls, options, levels):
        return cls(columns=options.columns, min_confidence=options.min_confidence, levels=levels)

    def __init__(self, columns="au", min_confidence=0.8, levels=("FRM", "UTT")):
        self.column_names = openface_columns(columns)
        self.columns = ",".join(g.strip() for g in str(columns).split(","))
        self.min_confidence = _check_confidence(min_confidence)
        self.name = "openface-" + self.columns.replace(",", "+")
        self.levels = _check_levels(levels, self.name)

    def check_inputs(self, clips, inputs):
        """Before any clip: no CSV for any clip and no binary to make them, or a first CSV without the asked
        columns, would fail every clip; either stops the run in one line."""
        first = next((clip.openface_csv for clip in clips if clip.openface_csv), None)
        if first is None:
            if clips and not inputs.openface_bin:
                folder = inputs.openface_dir
                where = (f"none of the {len(clips)} clips has one" if folder is None else f"{folder} does not exist"
                         if not os.path.isdir(folder) else f"{folder} holds none of the {len(clips)} clips")
                raise UserError(f"no OpenFace CSV: {where}; point --openface_dir DIR at the folder of the "
                                "<name>.csv (or <name>/<name>.csv) files, or make them with --openface_bin PATH "
                                "(OpenFace 2's FeatureExtraction)")
            return
        try:
            header = _read_openface_table(first).columns
        except ClipError:
            return  # an unreadable file is its own clip's failure
        problem = missing_columns(first, header, self.columns)
        if problem:
            raise UserError(f"{problem} (checked on the first CSV, before any clip)")

    def prepare(self, item):
        return parse_openface_csv(item, self.columns, self.min_confidence)

    def dim(self, level):
        return len(self.column_names)

    def encode(self, batch):
        out = []
        for frames in batch:
            arrays = {"FRM": frames, "UTT": frames.mean(axis=0, dtype=np.float64).astype(np.float32)}
            out.append({lv: arrays[lv] for lv in self.levels})
        return out


def _last_line(*texts):
    for text in texts:
        lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
        if lines:
            return lines[-1]
    return "no message"


def run_openface(binary, video_path, out_dir, timeout_s=600):
    """Run OpenFace 2's ``FeatureExtraction`` on one video (action units, head pose, gaze) and return the
    path of the per-frame CSV it writes: ``<out_dir>/<video stem>.csv``."""
    exe = shutil.which(binary)
    if exe is None:
        raise UserError(f"OpenFace binary {binary!r} not found or not executable: point --openface_bin to "
                        "OpenFace 2's FeatureExtraction (e.g. --openface_bin /opt/OpenFace/build/bin/FeatureExtraction)")
    if not os.path.isfile(video_path):
        raise ClipError(f"no video file {video_path}")
    os.makedirs(out_dir, exist_ok=True)
    cmd = [exe, "-f", str(video_path), "-out_dir", str(out_dir), "-aus", "-pose", "-gaze"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ClipError(f"OpenFace took longer than {timeout_s} s on {video_path}") from None
    except OSError as err:
        raise UserError(f"cannot run OpenFace binary {exe!r} ({err.strerror}): point --openface_bin to "
                        "OpenFace 2's FeatureExtraction") from None
    if done.returncode != 0:
        raise ClipError(f"OpenFace failed on {video_path} (exit {done.returncode}): {_last_line(done.stderr, done.stdout)}")
    stem = os.path.splitext(os.path.basename(video_path))[0]
    csv_path = os.path.join(out_dir, stem + ".csv")
    if not os.path.isfile(csv_path):
        raise ClipError(f"OpenFace wrote no {csv_path}: {_last_line(done.stderr, done.stdout)}")
    return csv_path

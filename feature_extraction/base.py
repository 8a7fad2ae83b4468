"""What every extractor is: which input of a clip it reads, what folder it writes, how it encodes a batch.

The runner (``feature_extraction.runner``) decodes clips in background workers, calls ``prepare`` there
too (CPU work such as an encoder's processor), sorts a window of prepared clips by ``size`` to cut padding,
and calls ``encode`` on batches in the main process (the accelerator). ``encode`` returns, per clip, one
array per requested level: ``"UTT"`` → ``(C,)`` and ``"FRM"`` → ``(T, C)``, written to
``<out>/<name>-UTT/<clip>.npy`` and ``<out>/<name>-FRM/<clip>.npy``."""
from dataclasses import dataclass

from toolkit.levels import SUFFIXES

LEVELS = tuple(suffix.lstrip("-") for suffix in SUFFIXES.values())  # "UTT", "FRM": the folder-name suffixes
MODALITIES = ("audio", "video", "text")  # the feature dictionaries of config.py: FEAT_AUDIO/VIDEO/TEXT_DICT
SAMPLE_RATE = 16000  # every audio input: 16 kHz mono float32, as the speech encoders expect

# What a clip offers to an extractor (``Extractor.source``):
#   audio    16 kHz mono float32 waveform, shape (S,)  (from audio/<name>.wav if present, else the video)
#   audio_stream  the same track as an iterable of float32 pieces decoded as they are read, never whole in
#            memory (``feature_extraction.decode.AudioTrack``): for extractors that take tracks of any length
#   text     the subtitle string of the clip (the chosen language column)
#   images   RGB uint8 frames (T, H, W, 3): face crops (openface_face npy, or --faces detect) or whole frames
#   video    the same RGB frames, for clip encoders that take a frame sequence (VideoMAE)
#   openface path of the clip's OpenFace 2 per-frame CSV (made by the FeatureExtraction binary if asked)
SOURCES = ("audio", "audio_stream", "text", "images", "video", "openface")


class ClipError(Exception):
    """A clip that cannot be used (no audio stream, unreadable file, no subtitle, no face): reported at the
    end and skipped, never fatal to the batch. The message is the reason, short."""


@dataclass
class Clip:
    """One clip of the release, with the paths of what exists for it (None where nothing does)."""

    name: str
    video: str | None = None
    audio: str | None = None
    faces: str | None = None  # openface_face/<name>/<name>.npy
    text: str | None = None  # None: the clip has no row in the subtitle CSV; "" an empty cell
    openface_csv: str | None = None


@dataclass(frozen=True)
class FeatureInfo:
    """What one feature folder an extractor writes holds: ``<name>/<clip>.npy`` of ``modality`` at ``level``,
    ``dim`` wide ((dim,) per clip for UTT, (T, dim) for FRM)."""

    name: str
    modality: str
    level: str
    dim: int


class Extractor:
    """Base class. Subclasses set ``source``, ``modality``, ``name`` and ``levels``, implement ``encode`` and
    ``dim``, and (to be found by name) register with ``feature_extraction.registry.register_extractor``."""

    source = "audio"
    modality = "audio"  # one of MODALITIES: the feature dictionary its folders belong in
    name = "feature"
    levels = ("UTT",)
    batch_size = 1
    summary = ""  # one line for extract.py --help
    options = ()  # its extract.py flags (feature_extraction.registry.option)
    utt_is_frame_mean = True  # "UTT" is the mean over time of "FRM" (openSMILE's functionals are not)

    @classmethod
    def build(cls, options, levels):
        """The extractor from ``extract.py``'s parsed flags (an argparse Namespace holding ``options``)."""
        raise NotImplementedError

    def check_inputs(self, clips, inputs):
        """Before any clip is read (``clips``: those to do; ``inputs``: the runner's Inputs): a problem that every
        clip would share (e.g. CSVs without the asked columns) as one UserError. Default: none."""

    def prepare(self, item):
        """Worker-side preprocessing of one decoded input (default: none). May raise ClipError."""
        return item

    def size(self, prepared):
        """Length used to group similar clips into one batch (less padding)."""
        try:
            return len(prepared)
        except TypeError:
            return 0

    def encode(self, batch):
        """list of prepared inputs → list of {level: array} with every level in ``self.levels``."""
        raise NotImplementedError

    def dim(self, level):
        """Width C of the arrays written for ``level``."""
        raise NotImplementedError

    def features(self):
        """The feature folders this extractor writes, with modality, level and width: what a data set's
        feature manifest records."""
        return [FeatureInfo(f"{self.name}-{level}", self.modality, level, int(self.dim(level))) for level in self.levels]

    def describe(self):
        """One line for the log: what runs, where."""
        return f"{self.name} ({self.source}, {'/'.join(self.levels)})"

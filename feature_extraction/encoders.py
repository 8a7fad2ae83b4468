"""Hugging Face encoders from a local folder or the local model cache, never a download.

One class per input kind, sharing the loading, the device/precision and the choice of hidden layers:

* audio (HuBERT, wav2vec2, WavLM, data2vec-audio, the encoder of Whisper): long audio is cut into pieces
  of ``chunk_s`` seconds (the official baselines use ~10 s) and the pieces' frames are joined;
* text (BERT/RoBERTa/MacBERT-like encoders; decoder LMs work the same way): one subtitle per clip;
* image (CLIP/SigLIP vision towers, DINOv2, ViT, ...): one vector per frame or face crop;
* video (VideoMAE and other clip encoders): one vector per segment of ``num_frames`` frames.

``--layers`` picks hidden states to average: ``last4`` (the field's usual choice for audio and text),
``lastK``, or indices such as ``-1`` or ``9,10,11,12`` (0 is the embedding output). ``pooled`` (the
default for images and video) takes the model's own embedding: CLIP/SigLIP's projected image features,
else the pooler output or the first token. Utterance level (``UTT``) is the mean over time, tokens, frames
or segments (``--text_pool first`` takes the first token of text); frame level (``FRM``) keeps them."""
import argparse
import itertools
import os
import re

import numpy as np

from feature_extraction.base import SAMPLE_RATE, ClipError, Extractor
from feature_extraction.registry import option, register_extractor
from toolkit.device import DEVICE_HELP, DEVICES
from toolkit.errors import UserError, bounded

AUDIO_TYPES = {"hubert", "wav2vec2", "wav2vec2-conformer", "wav2vec2-bert", "wavlm", "data2vec-audio", "unispeech",
               "unispeech-sat", "sew", "sew-d", "whisper"}
IMAGE_TYPES = {"clip", "chinese_clip", "siglip", "siglip2", "dinov2", "dinov2_with_registers", "vit", "deit", "beit",
               "swin", "swinv2", "convnext", "convnextv2", "dinov3_vit", "clip_vision_model", "siglip_vision_model"}
VIDEO_TYPES = {"videomae", "vivit", "timesformer", "vjepa2"}
LLM_TYPES = {"qwen2_audio": "audio_llm", "internvl": "video_llm"}  # feature_extraction/llm_audio.py, llm_video.py
HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")  # org/name: looked up in the local Hugging Face cache only
LAYERS = re.compile(r"pooled|last\d*|-?\d+(,-?\d+)*")


def layers_flag(text):
    """An argparse ``type`` for --layers: its form (the model says later which layers exist)."""
    value = str(text).strip().lower().replace(" ", "")
    if not LAYERS.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{text!r}: use pooled, lastK (e.g. last4) or layer numbers such as -1 or 9,10,11,12")
    return value


def local_gpu(gpu, env=os.environ):
    """--gpu, else this process's local rank under torchrun (LOCAL_RANK) or srun (SLURM_LOCALID), else 0."""
    from toolkit.distributed import local_rank

    return gpu if gpu is not None else local_rank(env=env)


# The flags every Hugging Face encoder takes (one Option object each, shared by the registered encoders).
ENCODER_OPTIONS = (
    option("--model", needed=True, help="Hugging Face checkpoint folder (or a hub id already in the local cache)"),
    option("--layers", type=layers_flag, help="hidden layers averaged: last4, lastK, -1, 9,10,11,12, or pooled "
           "(default: last4 for audio and text, pooled for visual)"),
    option("--batch_size", type=bounded(int, 1), default=16, help="clips (text, audio_llm, video_llm), pieces (audio), "
           "frames (images) or segments (video) per forward pass"),
    option("--device", default="auto", choices=DEVICES, help=DEVICE_HELP),
    option("--gpu", type=bounded(int, 0), default=None, help="CUDA device index (default: LOCAL_RANK or SLURM_LOCALID "
           "when set, so torchrun/srun processes take one GPU each, else 0)"),
    option("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"],
           help="auto: float16 on GPU, float32 on CPU"),
)
CHUNK_S = option("--chunk_s", type=bounded(float, 1.0), default=10.0, help="audio, audio_llm: seconds per encoder "
                 "piece (at most 30 for Whisper's encoder and Qwen2-Audio)")


def transformers_offline():
    """transformers, told never to reach the network and to keep its logs and progress bars quiet."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def model_kind(model_type):
    if model_type in LLM_TYPES:
        return LLM_TYPES[model_type]
    if model_type in AUDIO_TYPES:
        return "audio"
    if model_type in VIDEO_TYPES:
        return "video"
    if model_type in IMAGE_TYPES:
        return "image"
    return "text"


def locate(model):
    """``model`` (a folder, or a hub id already in the local cache) → (where to load from, its config)."""
    transformers = transformers_offline()
    hint = (f"download it where there is network (e.g. `hf download {model} --local-dir models/"
            f"{os.path.basename(model.rstrip('/'))}`), copy the folder here and pass --model models/<name>")
    if os.path.isdir(model):
        if not os.path.isfile(os.path.join(model, "config.json")):
            raise UserError(f"--model {model}: the folder has no config.json; it must be a Hugging Face checkpoint "
                            f"folder (config.json, weights, processor/tokenizer files) as save_pretrained writes it")
    elif not HUB_ID.fullmatch(model):
        raise UserError(f"--model {model}: no such folder; {hint}")
    try:
        config = transformers.AutoConfig.from_pretrained(model, local_files_only=True)
    except (OSError, ValueError) as exc:
        if os.path.isdir(model):
            raise UserError(f"--model {model}: its config.json does not load ({str(exc).splitlines()[0][:100]})") from None
        from huggingface_hub import constants

        raise UserError(f"--model {model}: not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and no such "
                        f"folder; {hint}") from None
    return model, config


def load_weights(auto_class, model):
    """``auto_class.from_pretrained(model)``; weights that cannot be read (damaged, cut short, or a pickle that
    asks for code, which is refused) are a UserError naming the weight files."""
    import pickle

    from safetensors import SafetensorError

    from toolkit.runs import refused_content

    try:
        return auto_class.from_pretrained(model, local_files_only=True)
    except pickle.UnpicklingError as exc:
        raise UserError(f"--model {model}: {weight_files(model, '.bin')} holds {refused_content(exc)}, which model "
                        "weights never do; refusing to load it (weights are read as data, never run): use the "
                        "model's model.safetensors, or re-save it with save_pretrained where you trust it") from None
    except (SafetensorError, OSError, RuntimeError, ValueError, EOFError) as exc:
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise UserError(f"--model {model}: its weights {weight_files(model)} cannot be read ({reason}); the files are "
                        "damaged or incomplete: copy the model folder again") from None


def weight_files(model, kind=None):
    """The weight files of a model folder (those ending in ``kind``), as text for a message."""
    if not os.path.isdir(model):
        return "(in the local cache)"
    names = sorted(f for f in os.listdir(model) if f.endswith(kind or (".safetensors", ".bin")))
    return ", ".join(os.path.join(model, f) for f in names[:3]) + (", ..." if len(names) > 3 else "")


def parse_layers(text, num_layers):
    """``--layers`` → indices into ``hidden_states`` (0 = embeddings, 1..num_layers), or None for pooled."""
    text = str(text).strip().lower()
    if text == "pooled":
        return None
    if text.startswith("last"):
        rest = text[4:]
        count = int(rest or 1) if rest.isdigit() or not rest else 0
        if not 1 <= count <= num_layers:
            raise UserError(f"--layers {text}: the model has {num_layers} layers; use last1..last{num_layers}")
        return list(range(num_layers - count + 1, num_layers + 1))
    try:
        picked = [int(part) for part in text.split(",")]
    except ValueError:
        raise UserError(f"--layers {text!r}: use pooled, lastK (e.g. last4) or layer numbers such as -1 or 9,10,11,12") from None
    out = []
    for index in picked:
        resolved = num_layers + 1 + index if index < 0 else index
        if not 0 <= resolved <= num_layers:
            raise UserError(f"--layers {text}: layer {index} does not exist (0 = embeddings, 1..{num_layers}, or -1..-{num_layers + 1})")
        out.append(resolved)
    return out


def pick_dtype(name, device):
    import torch

    if name == "auto":
        name = "float16" if device.type == "cuda" else "float32"
    if name in ("float16", "bfloat16") and device.type == "cpu":
        raise UserError(f"--dtype {name} needs a GPU here; use --dtype float32 (or auto) on the CPU")
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


class HFExtractor(Extractor):
    """Loading, device, precision and layer averaging shared by the four kinds."""

    kind = "text"
    default_layers = "last4"
    options = ENCODER_OPTIONS

    @classmethod
    def common_kwargs(cls, options, levels):
        """The arguments every encoder takes, from the parsed ENCODER_OPTIONS."""
        from toolkit.device import pick_device

        return dict(levels=levels, layers=options.layers, device=pick_device(options.device, local_gpu(options.gpu)),
                    dtype=options.dtype, batch_size=options.batch_size)

    def __init__(self, model, levels=("UTT",), layers=None, device=None, dtype="auto", batch_size=8, name=None):
        import torch

        self.path, self.config = locate(model)
        found = model_kind(self.config.model_type)
        if found != self.kind:
            raise UserError(f"--model {model} is a {self.config.model_type} model ({found}); this extraction needs "
                            f"{'an' if self.kind[0] in 'aeiou' else 'a'} {self.kind} encoder (see extract.py --help for the kinds)")
        self.name = name or os.path.basename(os.path.normpath(model)).split("/")[-1]
        self.levels, self.batch_size = tuple(levels), batch_size
        self.device = device or torch.device("cpu")
        self.dtype = pick_dtype(dtype, self.device)
        self.model = self.place(self.load_model(self.path)).eval()
        if layers is None and self.default_layers == "last4":  # the field's default, on models of any depth
            layers = f"last{min(4, self.num_layers())}"
        self.layers = parse_layers(self.default_layers if layers is None else layers, self.num_layers())
        self._dim = None

    def __getstate__(self):  # workers only prepare inputs: they never need the model
        return {**self.__dict__, "model": None}

    def load_model(self, path):
        return load_weights(transformers_offline().AutoModel, path)

    def place(self, model):
        """The loaded model on the chosen device, in the chosen precision."""
        return model.to(self.device, self.dtype)

    def num_layers(self):
        config = getattr(self.config, "vision_config", None) or getattr(self.config, "encoder_config", None) or self.config
        return getattr(config, "num_hidden_layers", None) or config.encoder_layers

    def probe(self):
        """A short input of this encoder's kind (silence, a word, a black frame), to measure its output."""
        return {"audio": np.zeros(SAMPLE_RATE, np.float32), "text": "a"}.get(self.modality, np.zeros((1, 32, 32, 3), np.uint8))

    def dim(self, level):
        """The output width, measured once on ``probe()`` (pooled embeddings need not be the hidden size)."""
        if self._dim is None:
            self._dim = int(next(iter(self.encode([self.prepare(self.probe())])[0].values())).shape[-1])
        return self._dim

    def describe(self):
        layers = "pooled" if self.layers is None else f"hidden states {self.layers}"
        return f"{self.name} ({self.config.model_type}, {layers}, {self.device.type} {str(self.dtype)[6:]})"

    def average_layers(self, hidden_states):
        """Mean of the chosen layers' hidden states, in float32."""
        import torch

        return torch.stack([hidden_states[i].float() for i in self.layers]).mean(0)

    def outputs(self, per_clip_frames, pooled=None):
        """[(T, C) float32 per clip] → [{level: array}]; UTT is the mean over T unless ``pooled`` is given."""
        results = []
        for i, frames in enumerate(per_clip_frames):
            if not np.isfinite(frames).all():
                raise ClipError("non-finite features (a float16 overflow?); rerun these clips with --dtype float32")
            level = {"FRM": frames, "UTT": pooled[i] if pooled is not None else frames.mean(0)}
            results.append({key: np.ascontiguousarray(level[key], dtype=np.float32) for key in self.levels})
        return results

    def to_device(self, array):
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(array)).to(self.device)
        return tensor.to(self.dtype) if tensor.is_floating_point() else tensor


def _pieces(wave, chunk):
    """Cut a waveform into pieces of ``chunk`` samples; a tail under 1 s joins the piece before it."""
    starts = list(range(0, len(wave), chunk))
    if len(starts) > 1 and len(wave) - starts[-1] < SAMPLE_RATE:
        starts.pop()
    bounds = starts[1:] + [len(wave)]
    return [wave[a:b] for a, b in zip(starts, bounds)]


def _stream_pieces(stream, chunk):
    """The pieces ``_pieces`` cuts, from a stream of arrays (an AudioTrack), holding at most one piece and a
    second at a time: a piece is let go once at least 1 s follows it, so it cannot be the one a tail joins."""
    held = np.zeros(0, np.float32)
    for part in stream:
        held = np.concatenate([held, np.asarray(part, np.float32).reshape(-1)])
        while len(held) >= chunk + SAMPLE_RATE:
            piece, held = held[:chunk], held[chunk:]
            yield piece
    yield from _pieces(held, chunk)


class LongTrack:
    """A track longer than ``AudioEncoder.LONG_S``: prepared as itself (nothing decoded), then decoded, cut and
    encoded piece by piece in ``encode``, so memory does not grow with its length."""

    def __init__(self, track, seconds):
        self.track, self.seconds = track, seconds


@register_extractor("audio")
class AudioEncoder(HFExtractor):
    """Speech encoders on the audio track, cut into ``chunk_s`` pieces whose frames are joined. The track comes
    as a stream (source ``audio_stream``); a track longer than ``LONG_S`` seconds is decoded and encoded piece by
    piece in ``encode`` (``LongTrack``), so memory does not grow with its length. ``whole_clip=True`` keeps the
    earlier path (the whole waveform, all pieces prepared at once), for comparison."""

    kind, source, modality = "audio", "audio_stream", "audio"
    LONG_S = 300.0
    summary = ("speech encoder on the audio track, in --chunk_s pieces: HuBERT, wav2vec2, WavLM, data2vec-audio, "
               "Whisper's encoder")
    options = ENCODER_OPTIONS + (CHUNK_S,)

    @classmethod
    def build(cls, options, levels):
        return cls(options.model, chunk_s=options.chunk_s, **cls.common_kwargs(options, levels))

    def __init__(self, model, chunk_s=10.0, whole_clip=False, **kwargs):
        super().__init__(model, **kwargs)
        self.source = "audio" if whole_clip else "audio_stream"
        self.whisper = self.config.model_type == "whisper"
        if self.whisper and chunk_s > 30:
            raise UserError(f"--chunk_s {chunk_s}: Whisper's encoder takes at most 30 s; use --chunk_s 30 or less")
        self.chunk = int(chunk_s * SAMPLE_RATE)
        self.processor = transformers_offline().AutoFeatureExtractor.from_pretrained(self.path, local_files_only=True)
        # Models trained without an attention mask (wav2vec2-base, HuBERT) see padding as signal: their
        # pieces are batched only with pieces of the same length, so a clip's features never depend on its batch.
        self.masked = bool(getattr(self.processor, "return_attention_mask", False))

    def load_model(self, path):
        model = super().load_model(path)
        return model.get_encoder() if self.config.model_type == "whisper" else model

    def prepare(self, item):
        """A waveform (S,) or a stream of pieces → [(model input, samples)] per piece, or a LongTrack."""
        if isinstance(item, np.ndarray):
            pieces = _pieces(item, self.chunk)
        else:
            seconds = item.declared_seconds() if hasattr(item, "declared_seconds") else None
            if seconds is not None and seconds > self.LONG_S:
                return LongTrack(item, seconds)
            pieces = _stream_pieces(item, self.chunk)
        prepared = [self.model_input(piece) for piece in pieces]
        samples = sum(n for _, n in prepared)
        if samples < SAMPLE_RATE // 10:
            raise ClipError(f"audio of {samples / SAMPLE_RATE:.3f} s is too short (under 0.1 s)")
        return prepared

    def model_input(self, piece):
        """(log-mel features for Whisper, else the processor's normalised samples, number of samples) of a piece."""
        key = "input_features" if self.whisper else "input_values"
        return self.processor(piece, sampling_rate=SAMPLE_RATE, return_tensors="np")[key][0], len(piece)

    def size(self, prepared):
        return int(prepared.seconds * SAMPLE_RATE) if isinstance(prepared, LongTrack) else sum(n for _, n in prepared)

    def groups(self, pieces):
        """Index lists of pieces encoded together: same length (or padded with a mask), at most batch_size."""
        order = sorted(range(len(pieces)), key=lambda i: -pieces[i][1])
        if self.whisper or self.masked:
            keyed = [order]
        else:
            by_length = {}
            for i in order:
                by_length.setdefault(len(pieces[i][0]), []).append(i)
            keyed = list(by_length.values())
        return [g[s:s + self.batch_size] for g in keyed for s in range(0, len(g), self.batch_size)]

    def valid_frames(self, samples):
        import torch

        if self.whisper:
            return min(-(-samples // 320), self.config.max_source_positions)
        return int(self.model._get_feat_extract_output_lengths(torch.tensor(samples)))

    def run(self, pieces, group):
        import torch

        width = max(len(pieces[i][0]) if not self.whisper else 0 for i in group)
        inputs = np.stack([pieces[i][0] if self.whisper else np.pad(pieces[i][0], (0, width - len(pieces[i][0])))
                           for i in group])
        kwargs = {}
        if self.masked and not self.whisper:
            mask = np.stack([np.arange(width) < len(pieces[i][0]) for i in group]).astype(np.int64)
            kwargs["attention_mask"] = torch.from_numpy(mask).to(self.device)
        key = "input_features" if self.whisper else "input_values"
        out = self.model(**{key: self.to_device(inputs)}, output_hidden_states=True, **kwargs)
        states = out.last_hidden_state.float() if self.layers is None else self.average_layers(out.hidden_states)
        return [states[j, :self.valid_frames(pieces[i][1])].cpu().numpy() for j, i in enumerate(group)]

    def encode(self, batch):
        import torch

        prepared = [clip for clip in batch if not isinstance(clip, LongTrack)]
        pieces = [piece for clip in prepared for piece in clip]
        owner = [c for c, clip in enumerate(prepared) for _ in clip]
        frames = [None] * len(pieces)
        with torch.inference_mode():
            for group in self.groups(pieces):
                for i, out in zip(group, self.run(pieces, group)):
                    frames[i] = out
        per_clip = iter(self.outputs([np.concatenate([f for f, o in zip(frames, owner) if o == c])
                                      for c in range(len(prepared))]))
        return [self.encode_long(clip) if isinstance(clip, LongTrack) else next(per_clip) for clip in batch]

    def encode_long(self, long):
        """{level: array} of a LongTrack: pieces decoded, prepared and encoded batch_size at a time; the frames
        are kept only when FRM is asked for (UTT is their running mean)."""
        import torch

        frames, total, count, window = [], 0.0, 0, []
        with torch.inference_mode():
            for piece in itertools.chain(_stream_pieces(long.track, self.chunk), [None]):  # None: flush the window
                if piece is not None:
                    window.append(self.model_input(piece))
                if window and (piece is None or len(window) == self.batch_size):
                    outs = [None] * len(window)
                    for group in self.groups(window):
                        for i, out in zip(group, self.run(window, group)):
                            outs[i] = out
                    for out in outs:  # in time order
                        frames += [out] if "FRM" in self.levels else []
                        total, count = total + out.sum(0, dtype=np.float64), count + len(out)
                    window = []
        mean = (total / max(count, 1)).astype(np.float32)
        if not np.isfinite(mean).all():
            raise ClipError("non-finite features (a float16 overflow?); rerun these clips with --dtype float32")
        return {level: np.concatenate(frames) if level == "FRM" else mean for level in self.levels}


@register_extractor("text")
class TextEncoder(HFExtractor):
    kind, source, modality = "text", "text", "text"
    summary = "text encoder on the subtitle (--lang column): BERT, RoBERTa, MacBERT-like, decoder LMs"
    options = ENCODER_OPTIONS + (option("--text_pool", default="mean", choices=["mean", "first"],
                                        help="text UTT: mean over tokens or first token"),)

    @classmethod
    def build(cls, options, levels):
        return cls(options.model, pool=options.text_pool, **cls.common_kwargs(options, levels))

    def __init__(self, model, pool="mean", **kwargs):
        super().__init__(model, **kwargs)
        if pool not in ("mean", "first"):
            raise UserError(f"--text_pool {pool!r}: use mean or first")
        self.pool = pool
        self.tokenizer = transformers_offline().AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token is None:  # decoder LMs: any id works, the mask hides it
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        limits = [getattr(self.config, "max_position_embeddings", None), self.tokenizer.model_max_length, 512]
        self.max_length = min(int(v) for v in limits if v) - (2 if self.config.model_type in ("roberta", "xlm-roberta") else 0)

    def prepare(self, text):
        return self.tokenizer(text, truncation=True, max_length=self.max_length)["input_ids"]

    def encode(self, batch):
        import torch

        padded = self.tokenizer.pad({"input_ids": batch}, return_tensors="np")
        mask = padded["attention_mask"]
        with torch.inference_mode():
            out = self.model(input_ids=self.to_device(padded["input_ids"]), attention_mask=self.to_device(mask),
                             output_hidden_states=True)
        states = out.last_hidden_state.float() if self.layers is None else self.average_layers(out.hidden_states)
        states = states.cpu().numpy()
        per_clip = [states[i, :int(mask[i].sum())] for i in range(len(batch))]
        pooled = [frames[0] for frames in per_clip] if self.pool == "first" else None
        return self.outputs(per_clip, pooled)


@register_extractor("visual")
class ImageEncoder(HFExtractor):
    """Registered as ``visual``: ``build`` makes a VideoEncoder instead when --model is a clip encoder."""

    kind, source, modality, default_layers = "image", "images", "video", "pooled"
    summary = ("image encoder per frame or face crop (CLIP, SigLIP, DINOv2, ViT), or per segment of frames for a "
               "clip encoder (VideoMAE)")

    @classmethod
    def build(cls, options, levels):
        return ENCODERS[visual_kind(options.model)](options.model, **cls.common_kwargs(options, levels))

    def __init__(self, model, **kwargs):
        super().__init__(model, **kwargs)
        self.processor = transformers_offline().AutoImageProcessor.from_pretrained(self.path, local_files_only=True)

    def prepare(self, frames):
        return self.processor(images=list(frames), return_tensors="np")["pixel_values"].astype(np.float32)

    def embed(self, pixels):
        """One vector per image: the model's own embedding (pooled) or the first token of the chosen layers."""
        if self.layers is None:
            if hasattr(self.model, "get_image_features"):
                out = self.model.get_image_features(pixel_values=pixels)
                return out if not hasattr(out, "pooler_output") else out.pooler_output
            out = self.model(pixel_values=pixels)
            pooled = getattr(out, "pooler_output", None)
            return pooled if pooled is not None else out.last_hidden_state[:, 0]
        tower = getattr(self.model, "vision_model", self.model)
        states = self.average_layers(tower(pixel_values=pixels, output_hidden_states=True).hidden_states)
        return states.mean((-2, -1)) if states.ndim == 4 else states[:, 0]

    def encode(self, batch):
        import torch

        images = np.concatenate(batch)
        vectors = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                pixels = self.to_device(images[start:start + self.batch_size])
                vectors.append(self.embed(pixels).float().reshape(len(pixels), -1).cpu().numpy())
        vectors = np.concatenate(vectors)
        bounds = np.cumsum([0] + [len(b) for b in batch])
        return self.outputs([vectors[a:b] for a, b in zip(bounds[:-1], bounds[1:])])


class VideoEncoder(HFExtractor):
    kind, source, modality, default_layers = "video", "video", "video", "pooled"

    def __init__(self, model, **kwargs):
        super().__init__(model, **kwargs)
        # the image processor, not AutoVideoProcessor: that one needs torchvision, which training does not
        self.processor = transformers_offline().AutoImageProcessor.from_pretrained(self.path, local_files_only=True)
        self.segment = int(getattr(self.config, "num_frames", 16))

    def prepare(self, frames):
        """Consecutive segments of ``num_frames`` frames (the last one padded by repeating its last frame)."""
        count = -(-len(frames) // self.segment)
        index = np.minimum(np.arange(count * self.segment), len(frames) - 1).reshape(count, self.segment)
        videos = [list(frames[row]) for row in index]
        return self.processor(videos, return_tensors="np")["pixel_values"].astype(np.float32)

    def encode(self, batch):
        import torch

        segments, vectors = np.concatenate(batch), []
        with torch.inference_mode():
            for start in range(0, len(segments), self.batch_size):
                out = self.model(pixel_values=self.to_device(segments[start:start + self.batch_size]),
                                 output_hidden_states=self.layers is not None)
                states = out.last_hidden_state.float() if self.layers is None else self.average_layers(out.hidden_states)
                vectors.append(states.mean(1).cpu().numpy())
        vectors = np.concatenate(vectors)
        bounds = np.cumsum([0] + [len(b) for b in batch])
        return self.outputs([vectors[a:b] for a, b in zip(bounds[:-1], bounds[1:])])


ENCODERS = {"audio": AudioEncoder, "text": TextEncoder, "image": ImageEncoder, "video": VideoEncoder}


def visual_kind(model):
    """``image`` or ``video``, from the model's config (a VideoMAE takes frame sequences)."""
    _, config = locate(model)
    return "video" if model_kind(config.model_type) == "video" else "image"

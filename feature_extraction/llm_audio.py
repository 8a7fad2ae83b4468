"""Features from an audio LLM (Qwen2-Audio, ``model_type`` qwen2_audio) through transformers.

The audio is cut into pieces of ``--chunk_s`` seconds (at most the 30 s window of its Whisper-style feature
extractor); every piece becomes a log-mel window of that fixed size. Two kinds of states:

* ``tower`` (default; 1280 wide for Qwen2-Audio-7B, as wide as the published ``Qwen2-Audio-7B-UTT``): the audio
  encoder alone, padding masked as the full model masks it. ``--layers`` picks its layers' outputs (50
  frames/s); ``pooled`` takes its own output, average-pooled to 25 frames/s and normed (what the language
  model receives). Only the tower goes to the device (the checkpoint is read whole into CPU memory first).
* ``lm`` (4096 wide for the 7B): the language model's states over the audio tokens (25/s), with the prompt
  before them: ``{prompt}\\n<|audio_bos|><|AUDIO|><|audio_eos|>`` once per piece.

FRM is one row per frame (tower) or audio token (lm), the pieces joined; UTT is their mean. The folders are
named after the model (``<name>-UTT``), with ``-lm`` added for lm states unless ``--name`` is given."""
import numpy as np

from feature_extraction.base import SAMPLE_RATE, ClipError
from feature_extraction.encoders import CHUNK_S, _pieces, _stream_pieces, transformers_offline
from feature_extraction.llm import LLMExtractor, layer_outputs
from feature_extraction.registry import register_extractor
from toolkit.errors import UserError


@register_extractor("audio_llm")
class AudioLLMEncoder(LLMExtractor):
    kind, source, modality = "audio_llm", "audio", "audio"
    summary = ("audio LLM (Qwen2-Audio): its audio tower's states (--llm_states tower) or the language model's over "
               "the audio tokens (lm)")
    options = LLMExtractor.options + (CHUNK_S,)
    offered_states = ("tower", "lm")

    @classmethod
    def build(cls, options, levels):
        return cls(options.model, chunk_s=options.chunk_s, **cls.llm_kwargs(options, levels))

    @property
    def media(self):
        return "audio tokens" if self.states == "lm" else "audio frames of the tower"

    def __init__(self, model, chunk_s=10.0, **kwargs):
        super().__init__(model, **kwargs)
        if self.states == "lm" and not kwargs.get("name"):  # the two kinds of states never share a folder
            self.name += "-lm"
        self.processor = transformers_offline().AutoProcessor.from_pretrained(self.path, local_files_only=True)
        window = self.processor.feature_extractor.n_samples / SAMPLE_RATE
        if chunk_s > window:
            raise UserError(f"--chunk_s {chunk_s}: {self.config.model_type} takes audio pieces of at most {window:g} s; "
                            f"use --chunk_s {window:g} or less")
        self.chunk = int(chunk_s * SAMPLE_RATE)
        self.audio_token_id = self.config.audio_token_id
        self.placeholder = f"{self.processor.audio_bos_token}{self.processor.audio_token}{self.processor.audio_eos_token}"
        self.pad_id = self.processor.tokenizer.pad_token_id or 0

    def load_model(self, path):
        model = super().load_model(path)
        return model.audio_tower if self.states == "tower" else model

    def num_layers(self):
        config = self.config.audio_config if self.states == "tower" else self.config.text_config
        return config.num_hidden_layers

    def prepare(self, wave):
        """(token ids, log-mel windows (P, mels, frames), their valid-frame masks (P, frames)). ``wave``: a
        waveform (S,) or a stream of pieces (an AudioTrack, decoded as it is read)."""
        pieces = _pieces(wave, self.chunk) if isinstance(wave, np.ndarray) else list(_stream_pieces(wave, self.chunk))
        samples = sum(len(piece) for piece in pieces)
        if samples < SAMPLE_RATE // 10:
            raise ClipError(f"audio of {samples / SAMPLE_RATE:.3f} s is too short (under 0.1 s)")
        text = self.prompt_prefix() + self.placeholder * len(pieces)
        inputs = self.processor(text=text, audio=pieces, sampling_rate=SAMPLE_RATE, return_tensors="np")
        return (inputs["input_ids"][0], inputs["input_features"].astype(np.float32),
                inputs["feature_attention_mask"].astype(np.int64))

    def size(self, prepared):
        return len(prepared[0])

    def encode(self, batch):
        import torch

        with torch.inference_mode():
            per_clip = self.tower_frames(batch) if self.states == "tower" else self.lm_frames(batch)
        return self.outputs(per_clip)

    def lm_frames(self, batch):
        media = {"input_features": self.to_device(np.concatenate([clip[1] for clip in batch])),
                 "feature_attention_mask": self.to_device(np.concatenate([clip[2] for clip in batch]))}
        states, ids = self.lm_forward([clip[0] for clip in batch], self.pad_id, **media)
        return self.at_token(states, ids, self.audio_token_id)

    def tower_mask(self, frames, width):
        """The attention mask the full model gives its audio tower: valid frames only."""
        import torch
        from transformers.masking_utils import create_bidirectional_mask

        valid = (torch.arange(width)[None, :] < frames[:, None]).long().to(self.device)
        shape = torch.zeros((len(frames), width, 1), dtype=self.dtype, device=self.device)
        return create_bidirectional_mask(config=self.model.config, inputs_embeds=shape, attention_mask=valid)

    def tower_frames(self, batch):
        import torch

        mels = np.concatenate([clip[1] for clip in batch])
        frames, pooled = self.model._get_feat_extract_output_lengths(torch.from_numpy(np.concatenate([clip[2] for clip in batch]).sum(-1)))
        width = (mels.shape[-1] - 2) // 2 + 1  # encoder positions after its stride-2 convolution
        with layer_outputs(self.model.layers, self.layers or []) as caught:
            out = self.model(self.to_device(mels), attention_mask=self.tower_mask(frames, width))
        if self.layers is None:
            states, keep = out.last_hidden_state.float(), pooled
        else:
            states, keep = torch.stack([caught[i].float() for i in self.layers]).mean(0), frames
        rows = [states[j, :int(keep[j])].cpu().numpy() for j in range(len(mels))]
        bounds = np.cumsum([0] + [len(clip[1]) for clip in batch])
        return [np.concatenate(rows[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]

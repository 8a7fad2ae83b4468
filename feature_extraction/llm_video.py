"""Features from a video LLM: InternVL in its transformers format (``model_type`` internvl, e.g.
OpenGVLab/InternVL3-8B-hf), the language model's hidden states over the visual tokens.

Frames are sampled as InternVL's video path samples them: ``--num_frames`` frames at the centres of equal
stretches of the clip (all frames when it has fewer), each resized whole to the vision tower's input
(no tiling) and laid out as the video path lays them out, after the prompt:
``{prompt}\\nFrame1: <img><IMG_CONTEXT>×N</img>\\nFrame2: ...`` with N tokens per frame (256 for 448 px).
The frames go through the checkpoint's image processor one by one: transformers' video processors need
torchvision, which this toolkit does not install; resizing and normalisation are the same.

FRM is one row per frame, the mean of that frame's visual-token states; UTT is their mean (= the mean over
every visual token, as each frame has N)."""
import numpy as np

from feature_extraction.encoders import transformers_offline
from feature_extraction.llm import LLMExtractor
from feature_extraction.registry import option, register_extractor
from toolkit.errors import UserError, bounded


def frame_index(count, wanted):
    """Indices of ``wanted`` frames at the centres of equal stretches of ``count`` frames (all if fewer)."""
    if count <= wanted:
        return np.arange(count)
    return ((np.arange(wanted) + 0.5) * count / wanted).astype(int)


def tokens_per_frame(config):
    """Visual tokens one frame becomes: (image side / patch side)² patches, pixel-shuffled by downsample_ratio."""
    vision = config.vision_config
    side = [int(s) for s in np.broadcast_to(vision.image_size, 2)]
    patch = [int(p) for p in np.broadcast_to(vision.patch_size, 2)]
    return int(round(side[0] // patch[0] * side[1] // patch[1] * config.downsample_ratio ** 2))


@register_extractor("video_llm")
class VideoLLMEncoder(LLMExtractor):
    kind, source, modality, media = "video_llm", "video", "video", "visual tokens"
    summary = "video LLM (InternVL, transformers format): the language model's states over the visual tokens of sampled frames"
    options = LLMExtractor.options + (option("--num_frames", type=bounded(int, 1), default=8, help="video_llm: frames "
                                             "sampled evenly over the clip from those decoded at --fps"),)

    @classmethod
    def build(cls, options, levels):
        return cls(options.model, num_frames=options.num_frames, **cls.llm_kwargs(options, levels))

    def __init__(self, model, num_frames=8, **kwargs):
        super().__init__(model, **kwargs)
        if num_frames < 1:
            raise UserError(f"--num_frames {num_frames}: use 1 or more")
        t = transformers_offline()
        self.num_frames = num_frames
        self.tokenizer = t.AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self.image_processor = t.AutoImageProcessor.from_pretrained(self.path, local_files_only=True)
        self.image_token_id = self.config.image_token_id
        context = self.tokenizer.convert_ids_to_tokens(self.image_token_id)
        start = getattr(self.tokenizer, "start_image_token", None) or "<img>"
        end = getattr(self.tokenizer, "end_image_token", None) or "</img>"
        self.frame_text = start + context * tokens_per_frame(self.config) + end
        self.pad_id = self.tokenizer.pad_token_id or 0

    def prepare(self, frames):
        """(token ids, pixel values (F, 3, H, W)) of the sampled frames."""
        picked = [frames[i] for i in frame_index(len(frames), self.num_frames)]
        pixels = self.image_processor(images=picked, crop_to_patches=False, return_tensors="np")["pixel_values"]
        text = self.prompt_prefix() + "\n".join(f"Frame{i + 1}: {self.frame_text}" for i in range(len(picked)))
        return np.asarray(self.tokenizer(text)["input_ids"], np.int64), pixels.astype(np.float32)

    def size(self, prepared):
        return len(prepared[0])

    def encode(self, batch):
        import torch

        with torch.inference_mode():
            pixels = self.to_device(np.concatenate([clip[1] for clip in batch]))
            states, ids = self.lm_forward([clip[0] for clip in batch], self.pad_id, pixel_values=pixels)
            tokens = self.at_token(states, ids, self.image_token_id)
        per_frame = [rows.reshape(len(clip[1]), -1, rows.shape[-1]).mean(1) for rows, clip in zip(tokens, batch)]
        return self.outputs(per_frame)

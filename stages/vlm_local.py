"""Ask a local transformers model (a folder, or a hub id already in the local cache; never a download)
about one clip, through its own processor and chat template: frames as images where the processor takes
images, the audio where it takes audio (Qwen2.5-Omni takes both; Qwen2.5-VL, LLaVA-OneVision, InternVL and
LLaVA images; Qwen2-Audio audio), the prompt with the subtitle as text. Greedy decoding, so the same model
and clip give the same answer.

Any model of transformers' multimodal-LM auto class loads; tested here with tiny random LLaVA and Qwen2-Audio
checkpoints (preprocess/make_demo_encoders.py). The processors of Qwen2.5-VL, Qwen2.5-Omni, LLaVA-OneVision and
InternVL also hold a video processor, which needs torchvision; where it is missing they do not load."""
import numpy as np

from feature_extraction.encoders import locate, pick_dtype, transformers_offline
from stages.vlm_endpoint import Reply
from toolkit.errors import UserError


def _load_processor(t, path):
    try:
        return t.AutoProcessor.from_pretrained(path, local_files_only=True)
    except ImportError as exc:
        raise UserError(f"--model {path}: its processor needs a package that is not installed "
                        f"({str(exc).splitlines()[0][:160]})") from None
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        hint = " (its video processor needs torchvision: pip install torchvision)" if not _has_torchvision() else ""
        raise UserError(f"--model {path}: its processor does not load{hint} ({str(exc).splitlines()[0][:160]})") from None


def _has_torchvision():
    import importlib.util

    return importlib.util.find_spec("torchvision") is not None


class LocalModel:
    """``ask(question)`` → Reply by ``generate`` on one device; one question at a time (``asks_in_workers``
    is False: worker threads only decode clips ahead)."""

    kind = "local"
    asks_in_workers = False
    workers = 2  # decoding threads

    def __init__(self, model, device, dtype="auto", max_tokens=1024):
        t = transformers_offline()
        self.path, config = locate(model)
        self.name = model
        if config.model_type not in t.models.auto.modeling_auto.MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES:
            raise UserError(f"--model {model} is a {config.model_type} model, not a model that answers about images "
                            "or audio; use a video/audio LLM (Qwen2.5-Omni, Qwen2.5-VL, LLaVA-OneVision, InternVL, "
                            "Qwen2-Audio) or --api_base for a server")
        if hasattr(config, "enable_audio_output"):  # Qwen2.5-Omni: text only, without its speech generator
            config.enable_audio_output = False
        self.processor = _load_processor(t, self.path)
        self.takes = frozenset(({"frames"} if getattr(self.processor, "image_processor", None) is not None else set())
                               | ({"audio"} if getattr(self.processor, "feature_extractor", None) is not None else set()))
        if not self.takes:
            raise UserError(f"--model {model}: its processor takes neither images nor audio")
        self.device, self.dtype, self.max_tokens = device, pick_dtype(dtype, device), max_tokens
        loaded = t.AutoModelForMultimodalLM.from_pretrained(self.path, config=config, dtype=self.dtype, local_files_only=True)
        self.model = loaded.to(self.device).eval()
        self.generator = getattr(self.model, "thinker", self.model)  # Qwen2.5-Omni writes text with its thinker
        self.requests, self.retried = 0, 0

    def describe(self):
        sees = " and ".join(sorted(self.takes))
        return f"{self.name} ({self.model.config.model_type}, sees {sees} and the subtitle; {self.device.type} {str(self.dtype)[6:]})"

    def inputs(self, question):
        from PIL import Image

        content = [{"type": "image", "image": Image.fromarray(np.ascontiguousarray(frame))} for frame in question.frames]
        if question.audio is not None:
            content.append({"type": "audio", "audio": question.audio})
        content.append({"type": "text", "text": question.text})
        batch = self.processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                                   tokenize=True, return_dict=True, return_tensors="pt")
        return {k: (v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device)) if hasattr(v, "to") else v
                for k, v in batch.items()}

    def ask(self, question):
        import torch

        batch = self.inputs(question)
        self.requests += 1
        with torch.inference_mode():
            out = self.generator.generate(**batch, max_new_tokens=self.max_tokens, do_sample=False)
        prompt_len = batch["input_ids"].shape[1]
        new = out[0, prompt_len:]
        pad = getattr(self.processor.tokenizer, "pad_token_id", None)
        completion = int((new != pad).sum()) if pad is not None else int(new.numel())
        text = self.processor.batch_decode(new[None], skip_special_tokens=True)[0]
        finish = "length" if new.numel() >= self.max_tokens else "stop"
        return Reply(text, prompt_len, completion, finish)

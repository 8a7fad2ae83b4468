"""What the multimodal-LLM extractors share: loading (precision, optional ``device_map``), the text prompt, and
the choice of hidden states over the media tokens.

A multimodal LLM turns audio or frames into embeddings that take the place of placeholder tokens in its
text; the language model then reads them like words. Its hidden states at those positions are the
feature (``lm`` states); the audio LLM also offers the states of its audio tower alone (``tower``).

* The prompt (``--prompt_text``) comes *before* the media: a causal LM's state at a position sees only what
  precedes it, so a prompt after the media would change nothing in the states taken.
* Clips in a batch are padded on the right: the real tokens keep their positions and never attend to the
  padding, so a clip's features do not depend on its batch (up to float rounding of batched matrix products).
* ``--layers`` counts as for the text encoders: 0 is the embedding output, 1..N the layers, the last one
  after the final norm; ``pooled`` is the last hidden state.
"""
from contextlib import contextmanager

import numpy as np

from feature_extraction.encoders import ENCODER_OPTIONS, HFExtractor, transformers_offline
from feature_extraction.registry import option
from toolkit.errors import UserError

ACCELERATE = "accelerate==1.15.0"  # the release this toolkit names when --device_map needs it
DEVICE_MAPS = ("auto", "balanced", "sequential")
# The flags both LLM extractors take (one Option object each, shared through the registry).
LLM_OPTIONS = (
    option("--llm_states", choices=["tower", "lm"], help="audio_llm: tower = its audio encoder's states (default), "
           "lm = the language model's states over the audio tokens; video_llm: lm only"),
    option("--prompt_text", default="", help="text put before the audio or frames: the lm states over them depend on "
           "it (tower states do not)"),
    option("--device_map", metavar="auto|balanced|sequential", help="spread the model over the visible GPUs and the "
           "CPU (needs the accelerate package); default: whole on --device"),
)


def check_device_map(device_map):
    """``--device_map`` → the value for ``from_pretrained``, or a one-line error when accelerate is missing
    (transformers hands every device map to it)."""
    if device_map is None:
        return None
    if device_map not in DEVICE_MAPS:
        raise UserError(f"--device_map {device_map!r}: use one of {', '.join(DEVICE_MAPS)}")
    try:
        import accelerate  # noqa: F401
    except ImportError:
        raise UserError(f"--device_map {device_map} needs the accelerate package: pip install {ACCELERATE} (or leave "
                        f"--device_map out: the model then loads whole on --device; a 7B model in float16 "
                        f"takes about 17 GB, which fits one 24 GB GPU)") from None
    return device_map


def pad_right(rows, pad_id):
    """Token id rows of different lengths → (ids, attention mask), both (B, longest), padding on the right."""
    longest = max(len(row) for row in rows)
    ids = np.full((len(rows), longest), pad_id, np.int64)
    mask = np.zeros((len(rows), longest), np.int64)
    for i, row in enumerate(rows):
        ids[i, :len(row)], mask[i, :len(row)] = row, 1
    return ids, mask


@contextmanager
def layer_outputs(layers, wanted):
    """Hidden states of a stack of layers, caught by hooks: index 0 is the input of the first layer, i the
    output of layer i. Used where a model's own ``hidden_states`` do not hold each layer's output."""
    found, handles = {}, []

    def keep(index):
        def hook(module, args, output):
            found[index] = output[0] if isinstance(output, tuple) else output
        return hook

    if 0 in wanted:
        handles.append(layers[0].register_forward_pre_hook(lambda module, args: found.__setitem__(0, args[0])))
    handles += [layers[i - 1].register_forward_hook(keep(i)) for i in wanted if i > 0]
    try:
        yield found
    finally:
        for handle in handles:
            handle.remove()


class LLMExtractor(HFExtractor):
    """Shared by the audio and video LLM extractors. Subclasses set ``kind``, ``source``, ``offered_states``
    and ``media`` (what the feature is taken over, for the log) and implement ``prepare`` and ``encode``."""

    offered_states = ("lm",)
    media = "media"
    options = ENCODER_OPTIONS + LLM_OPTIONS

    @classmethod
    def llm_kwargs(cls, options, levels):
        """The arguments both LLM extractors take, from the parsed ENCODER_OPTIONS and LLM_OPTIONS."""
        return dict(states=options.llm_states, prompt=options.prompt_text, device_map=options.device_map,
                    **cls.common_kwargs(options, levels))

    def __init__(self, model, states=None, prompt="", device_map=None, **kwargs):
        self.states = states or self.offered_states[0]
        if self.states not in self.offered_states:
            raise UserError(f"--llm_states {self.states}: --modality {self.kind} offers {', '.join(self.offered_states)}")
        self.prompt = prompt or ""
        self.device_map = check_device_map(device_map)
        super().__init__(model, **kwargs)

    def load_model(self, path):
        extra = {"device_map": self.device_map} if self.device_map else {}
        return transformers_offline().AutoModel.from_pretrained(path, local_files_only=True, dtype=self.dtype, **extra)

    def place(self, model):
        return model if self.device_map else super().place(model)

    def num_layers(self):
        return self.config.text_config.num_hidden_layers

    def describe(self):
        layers = "last hidden state" if self.layers is None else f"hidden states {self.layers}"
        prompt = f", prompt {self.prompt[:40]!r}" if self.prompt and self.states == "lm" else ""
        where = f"device_map {self.device_map}" if self.device_map else self.device.type
        return (f"{self.name} ({self.config.model_type}, {self.states} {layers} over the {self.media}{prompt}, "
                f"{where} {str(self.dtype)[6:]})")

    def prompt_prefix(self):
        return f"{self.prompt}\n" if self.prompt else ""

    def lm_forward(self, rows, pad_id, **media):
        """Run the whole model on padded token rows and the media tensors; return (states (B, L, C), ids)."""
        ids, mask = pad_right(rows, pad_id)
        # only the chosen layers' states are kept (transformers fills the others with None): less GPU memory
        out = self.model(input_ids=self.to_device(ids), attention_mask=self.to_device(mask), use_cache=False,
                         output_hidden_states=list(self.layers or []) or False, **media)
        states = out.last_hidden_state.float() if self.layers is None else self.average_layers(out.hidden_states)
        return states, ids

    @staticmethod
    def at_token(states, ids, token_id):
        """Per row, the states at the positions holding ``token_id`` (the media placeholders), as numpy."""
        return [states[i, np.flatnonzero(ids[i] == token_id)].cpu().numpy() for i in range(len(ids))]

"""Build small, randomly initialised Hugging Face encoders in local folders, as ``save_pretrained`` writes
real checkpoints (config.json, weights, processor or tokenizer files).

    python preprocess/make_demo_encoders.py --out data/demo_clips/models               # hubert, bert, vit, videomae
    python preprocess/make_demo_encoders.py --out /tmp/encoders --kinds whisper clip --hidden 32 --layers 2
    python preprocess/make_demo_encoders.py --out data/demo_clips/models --kinds llava qwen2-audio   # for describe.py
    python preprocess/make_demo_encoders.py --out /tmp/encoders --kinds qwen2-audio internvl   # extract.py audio_llm, video_llm

They load through exactly the path a downloaded checkpoint takes (``extract.py --model <folder>``), so the
raw-clip demo and the tests run the real extraction code with no download. ``llava`` (an image LLM) and
``qwen2-audio`` (an audio LLM) are chat models with their language-model head, tokenizer, processor and chat
template, for ``describe.py --model <folder>``; random weights answer gibberish. ``qwen2-audio`` and ``internvl``
(a video LLM) are saved in the published layout (their generation class), for ``extract.py --modality audio_llm``
and ``video_llm``. Random weights carry no knowledge of emotion: features from them are only as good as a random
projection of the input. For real work use the checkpoints the field uses (README, "From raw clips to feature
folders").
"""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from toolkit.errors import ArgumentParser, UserError, bounded, cli  # noqa: E402

CONV = dict(conv_dim=(32, 32, 32), conv_stride=(5, 4, 4), conv_kernel=(10, 8, 4), num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=2, feat_extract_norm="group")
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CORPUS = ["我很高兴 今天真开心 太好了 I am so happy today, this is great",
          "他很生气 气死我了 别再这样 he is angry, stop doing this now",
          "我好难过 心里很难受 I feel so sad and tired",
          "我有点担心 怎么办呢 I am worried, what if it goes wrong",
          "真的吗 没想到啊 really? I did not expect that at all",
          "好的 我知道了 明天见 okay, I see, see you tomorrow"]


def _size(hidden, layers):
    return dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=2 * hidden)


def _tokenizer(corpus):
    import transformers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()  # one token per Chinese character, as BERT does
    tok.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=2000, special_tokens=SPECIAL))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[(t, tok.token_to_id(t)) for t in ("[CLS]", "[SEP]")])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                                sep_token="[SEP]", mask_token="[MASK]", model_max_length=128)


def _audio(model_type):
    def build(t, hidden, layers, corpus):
        config = t.AutoConfig.for_model(model_type, **_size(hidden, layers), **CONV)
        return config, t.Wav2Vec2FeatureExtractor(return_attention_mask=False, do_normalize=True)
    return build


def _whisper(t, hidden, layers, corpus):
    config = t.WhisperConfig(d_model=hidden, encoder_layers=layers, decoder_layers=1, encoder_attention_heads=2,
                             decoder_attention_heads=2, encoder_ffn_dim=2 * hidden, decoder_ffn_dim=2 * hidden,
                             vocab_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
    return config, t.WhisperFeatureExtractor()


def _text(model_type):
    def build(t, hidden, layers, corpus):
        tokenizer = _tokenizer(corpus)
        config = t.AutoConfig.for_model(model_type, **_size(hidden, layers), vocab_size=len(tokenizer),
                                        max_position_embeddings=130, pad_token_id=tokenizer.pad_token_id)
        return config, tokenizer
    return build


def _clip(t, hidden, layers, corpus):
    size = dict(hidden_size=hidden, num_attention_heads=2, intermediate_size=2 * hidden)
    config = t.CLIPConfig(text_config=dict(size, num_hidden_layers=1, vocab_size=64),
                          vision_config=dict(size, num_hidden_layers=layers, image_size=64, patch_size=16),
                          projection_dim=hidden // 2)
    return config, t.CLIPImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64})


def _vision(model_type):
    def build(t, hidden, layers, corpus):
        config = t.AutoConfig.for_model(model_type, **_size(hidden, layers), image_size=64, patch_size=16)
        return config, t.ViTImageProcessor(size={"height": 64, "width": 64})
    return build


def _videomae(t, hidden, layers, corpus):
    config = t.VideoMAEConfig(**_size(hidden, layers), image_size=64, patch_size=16, num_frames=8, tubelet_size=2)
    return config, t.VideoMAEImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64})


# Chat models that answer about clips (describe.py): a byte-level BPE tokenizer with the special tokens of
# Qwen-style chat, a chat template that places images and audio, and a small Qwen2 language model.
CHAT_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]
CHAT_TEMPLATE = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
                 "{{ message['content'] }}{% else %}{% for part in message['content'] %}{% if part['type'] == 'image' %}"
                 "<image>{% elif part['type'] == 'audio' %}<|audio_bos|><|AUDIO|><|audio_eos|>{% elif part['type'] == 'text' %}"
                 "{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
ANSWER_WORDS = ['{"scores": {"neutral": 0.1, "angry": 0.0, "happy": 0.7, "sad": 0.1, "worried": 0.05, "surprise": 0.05},',
                '"label": "happy", "reasoning": "smiles, bright voice", "contribution": {"video": 0.4, "audio": 0.3, "subtitle": 0.3}}']


def _prompt_lines():
    """The lines of prompt.txt and prompt_zh.txt, so the prompt takes few tokens (a short, quick question)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    lines = []
    for name in ("prompt.txt", "prompt_zh.txt"):
        with open(os.path.join(root, name), encoding="utf-8") as f:
            lines.extend(f.read().splitlines())
    return lines


def _chat_tokenizer(corpus, **named_tokens):
    """``named_tokens``: {attribute: token} a multimodal processor looks up on its tokenizer (those not in
    CHAT_SPECIAL become special tokens too)."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    special = CHAT_SPECIAL + [token for token in named_tokens.values() if token not in CHAT_SPECIAL]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(list(corpus) + ANSWER_WORDS + _prompt_lines(), trainers.BpeTrainer(
        vocab_size=2000, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return transformers.Qwen2Tokenizer(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                       extra_special_tokens=named_tokens)


def _chat_text(tokenizer, hidden, layers):
    return dict(model_type="qwen2", vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)


def _llava(t, hidden, layers, corpus):
    """An image LLM (LLaVA: CLIP vision tower, projector, language model); frames go in as images."""
    tokenizer = _chat_tokenizer(corpus, image_token="<image>")
    vision = dict(model_type="clip_vision_model", hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                  num_attention_heads=2, image_size=32, patch_size=8)
    config = t.LlavaConfig(vision_config=vision, text_config=_chat_text(tokenizer, hidden, layers),
                           image_token_index=tokenizer.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
                           vision_feature_select_strategy="default")
    images = t.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = t.LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=8, num_additional_image_tokens=1,
                                 vision_feature_select_strategy="default", chat_template=CHAT_TEMPLATE)
    return config, processor, "AutoModelForMultimodalLM"


def _qwen2_audio(t, hidden, layers, corpus):
    """An audio LLM (Qwen2-Audio: Whisper-like audio tower, projector, Qwen2 language model)."""
    tokenizer = _chat_tokenizer(corpus, audio_token="<|AUDIO|>", audio_bos_token="<|audio_bos|>", audio_eos_token="<|audio_eos|>")
    audio = dict(d_model=hidden, encoder_layers=layers, encoder_attention_heads=2, encoder_ffn_dim=2 * hidden, num_mel_bins=128)
    config = t.Qwen2AudioConfig(audio_config=audio, text_config=_chat_text(tokenizer, hidden, layers),
                                audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"))
    processor = t.Qwen2AudioProcessor(feature_extractor=t.WhisperFeatureExtractor(feature_size=128), tokenizer=tokenizer,
                                      chat_template=CHAT_TEMPLATE)
    return config, processor, "AutoModelForMultimodalLM"


def _internvl(t, hidden, layers, corpus):
    """A video LLM (InternVL in transformers format: ViT on 64 px frames, 4 visual tokens each after its pixel
    shuffle, projector, Qwen2 language model). Saved as tokenizer + image processor: the InternVL processor
    needs torchvision."""
    tokenizer = _chat_tokenizer(corpus, start_image_token="<img>", end_image_token="</img>",
                                context_image_token="<IMG_CONTEXT>", video_token="<video>")
    config = t.InternVLConfig(vision_config=dict(**_size(hidden, layers), image_size=[64, 64], patch_size=[16, 16]),
                              text_config=_chat_text(tokenizer, hidden, layers), image_seq_length=4,
                              image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"))
    return config, (tokenizer, t.GotOcr2ImageProcessorPil(size={"height": 64, "width": 64})), "AutoModelForMultimodalLM"


BUILDERS = {"hubert": _audio("hubert"), "wav2vec2": _audio("wav2vec2"), "wavlm": _audio("wavlm"),
            "data2vec-audio": _audio("data2vec-audio"), "whisper": _whisper, "bert": _text("bert"),
            "roberta": _text("roberta"), "gpt2": _text("gpt2"), "clip": _clip, "dinov2": _vision("dinov2"), "vit": _vision("vit"),
            "videomae": _videomae, "llava": _llava, "qwen2-audio": _qwen2_audio,
            "internvl": _internvl}
DEMO_KINDS = ("hubert", "bert", "vit", "videomae")


def _base_text(t, corpus):
    tokenizer = _tokenizer(corpus)
    return t.BertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id), tokenizer


# The architectures and input sizes of chinese-hubert-base, bert-base, vit-base-patch16-224 and videomae-base
# (the configs' defaults), for timing: what runs is as heavy as the real checkpoints, only the weights are random.
BASE_BUILDERS = {"hubert": lambda t, corpus: (t.HubertConfig(), t.Wav2Vec2FeatureExtractor(return_attention_mask=False)),
                 "bert": _base_text,
                 "vit": lambda t, corpus: (t.ViTConfig(), t.ViTImageProcessor()),
                 "videomae": lambda t, corpus: (t.VideoMAEConfig(), t.VideoMAEImageProcessor())}


def encoder_folder(kind, base=False):
    """The folder name of a built encoder: ``tiny-<kind>`` at the small size, ``base-<kind>`` at base size."""
    return f"{'base' if base else 'tiny'}-{kind}"


def build_encoder(kind, out_dir, hidden=32, layers=2, seed=0, corpus=CORPUS, base=False):
    """Write a random ``kind`` encoder with its processor/tokenizer to ``out_dir`` (atomically); return it.
    ``base``: the base-size architecture instead (``hidden`` and ``layers`` are then ignored)."""
    builders = BASE_BUILDERS if base else BUILDERS
    if kind not in builders:
        raise UserError(f"unknown encoder kind {kind!r}{' at base size' if base else ''}; known: {', '.join(builders)}")
    import torch

    from feature_extraction.encoders import transformers_offline

    t = transformers_offline()
    built = BASE_BUILDERS[kind](t, list(corpus)) if base else BUILDERS[kind](t, hidden, layers, list(corpus))
    config, processor = built[:2]
    torch.manual_seed(seed)
    model = getattr(t, built[2] if len(built) > 2 else "AutoModel").from_config(config)  # chat models keep their LM head
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.", dir=parent)
    try:
        model.save_pretrained(staging)
        for part in processor if isinstance(processor, tuple) else (processor,):
            part.save_pretrained(staging)
        if os.path.isdir(out_dir):
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def read_corpus(path):
    """Every subtitle of a subtitle CSV (both languages), to give the demo tokenizer a vocabulary."""
    from toolkit.tables import read_table

    table = read_table(path, "subtitle CSV")
    return [str(v) for col in table.columns if col != "name" for v in table[col] if str(v).strip()] or CORPUS


@cli
def main(argv=None):
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=os.path.join("data", "demo_clips", "models"),
                        help="folder that receives one sub-folder per encoder, named tiny-<kind> (base-<kind> with --base)")
    parser.add_argument("--kinds", nargs="+", default=list(DEMO_KINDS), choices=sorted(BUILDERS), metavar="KIND",
                        help=f"encoders to build, of: {', '.join(BUILDERS)}")
    parser.add_argument("--hidden", type=bounded(int, 4), default=64, help="hidden size (even)")
    parser.add_argument("--layers", type=bounded(int, 1), default=4, help="transformer layers")
    parser.add_argument("--corpus", default=None, help="subtitle CSV whose text the tokenizer learns (text encoders)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--base", action="store_true", help="base-size architectures and input sizes (hubert-base, "
                        "bert-base, vit-base-patch16-224, videomae-base) instead of --hidden/--layers: for timing")
    args = parser.parse_args(argv)
    if args.hidden % 2:
        raise UserError(f"--hidden {args.hidden}: use an even size (2 attention heads)")
    corpus = read_corpus(args.corpus) if args.corpus else CORPUS
    for kind in args.kinds:
        path = build_encoder(kind, os.path.join(args.out, encoder_folder(kind, args.base)), args.hidden, args.layers,
                             args.seed, corpus, base=args.base)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""Build small, randomly initialised Hugging Face encoders in local folders, as ``save_pretrained`` writes
real checkpoints (config.json, weights, processor or tokenizer files).

    python preprocess/make_demo_encoders.py --out data/demo_clips/models               # hubert, bert, vit, videomae
    python preprocess/make_demo_encoders.py --out /tmp/encoders --kinds whisper clip --hidden 32 --layers 2

They load through exactly the path a downloaded checkpoint takes (``extract.py --model <folder>``), so the
raw-clip demo and the tests run the real extraction code with no download. Random weights carry no
knowledge of emotion: features from them are only as good as a random projection of the input. For real
work use the checkpoints the field uses (README, "From raw clips to feature folders").
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


BUILDERS = {"hubert": _audio("hubert"), "wav2vec2": _audio("wav2vec2"), "wavlm": _audio("wavlm"),
            "data2vec-audio": _audio("data2vec-audio"), "whisper": _whisper, "bert": _text("bert"),
            "roberta": _text("roberta"), "gpt2": _text("gpt2"), "clip": _clip, "dinov2": _vision("dinov2"), "vit": _vision("vit"),
            "videomae": _videomae}
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


def build_encoder(kind, out_dir, hidden=32, layers=2, seed=0, corpus=CORPUS, base=False):
    """Write a random ``kind`` encoder with its processor/tokenizer to ``out_dir`` (atomically); return it.
    ``base``: the base-size architecture instead (``hidden`` and ``layers`` are then ignored)."""
    builders = BASE_BUILDERS if base else BUILDERS
    if kind not in builders:
        raise UserError(f"unknown encoder kind {kind!r}{' at base size' if base else ''}; known: {', '.join(builders)}")
    import torch

    from feature_extraction.encoders import transformers_offline

    t = transformers_offline()
    config, processor = BASE_BUILDERS[kind](t, list(corpus)) if base else BUILDERS[kind](t, hidden, layers, list(corpus))
    torch.manual_seed(seed)
    model = t.AutoModel.from_config(config)
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.", dir=parent)
    try:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
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
                        help="folder that receives one sub-folder per encoder, named tiny-<kind>")
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
        path = build_encoder(kind, os.path.join(args.out, f"tiny-{kind}"), args.hidden, args.layers, args.seed, corpus,
                            base=args.base)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

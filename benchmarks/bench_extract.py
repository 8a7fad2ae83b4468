"""Extraction throughput: clips/s and the share of time the main process waits for decoding.

    python benchmarks/bench_extract.py [--clips 48] [--repeats 3] [--workers 0 2] [--device auto]
        [--hidden 64 --layers 4] [--base]
    python benchmarks/bench_extract.py --memory    # float16 weights of the real-size multimodal LLMs

Makes the raw-clip demo (preprocess/make_demo_clips.py) and small random encoders
(preprocess/make_demo_encoders.py; ``--base`` adds the architectures and input sizes of chinese-hubert-base,
bert-base, vit-base-patch16-224 and videomae-base, with random weights; the multimodal LLMs Qwen2-Audio and
InternVL run at the small size only), then runs every extraction over all clips ``--repeats`` times
with ``--overwrite`` and prints the median clips/s, seconds per run and the share of the run the main
process spent waiting for decoding workers (the rest is encoding and writing). With ``--workers 0`` decoding
runs in the main process, so the share is the decoding part of the work itself. On a GPU (``--device cuda``,
or auto where one is present) the encoders run in float16.

``--memory`` builds the published architectures of Qwen2-Audio-7B and InternVL3-8B-hf empty (on PyTorch's
meta device: no weights, no download), counts their parameters and prints the float16 weight memory of
what extract.py keeps on the device for each kind of states.
"""
import argparse
import os
import statistics
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from feature_extraction.release import find_clips  # noqa: E402
from feature_extraction.runner import Inputs, extract  # noqa: E402

RUNS = [  # (row, registered extractor, encoder kind or None, inputs and extractor options)
    ("opensmile eGeMAPSv02 (audio)", "opensmile", None, {}),
    ("hubert (audio)", "audio", "hubert", {}),
    ("bert (subtitles)", "text", "bert", {}),
    ("vit (release face crops, 3 fps)", "visual", "vit", {"faces": "release"}),
    ("vit (Haar-detected faces, 3 fps)", "visual", "vit", {"faces": "detect"}),
    ("videomae (whole frames, 8 fps)", "visual", "videomae", {"faces": "none", "fps": 8.0}),
    ("openface CSV parsing", "openface", None, {}),
    ("qwen2-audio tower states (audio)", "audio_llm", "qwen2-audio", {"options": {"llm_states": "tower"}}),
    ("qwen2-audio lm states (audio tokens)", "audio_llm", "qwen2-audio", {"options": {"llm_states": "lm"}}),
    ("internvl lm states (8 whole frames of 8 fps)", "video_llm", "internvl", {"faces": "none", "fps": 8.0}),
]
LLM_KINDS = ("qwen2-audio", "internvl")
_QWEN2 = dict(model_type="qwen2", hidden_act="silu")
REAL_SIZE = {  # (config class, checkpoint class, the shapes in the published config.json)
    "Qwen2-Audio-7B": ("Qwen2AudioConfig", "Qwen2AudioForConditionalGeneration", dict(
        audio_config=dict(d_model=1280, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120, num_mel_bins=128),
        text_config=dict(_QWEN2, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=32, vocab_size=156032))),
    "InternVL3-8B-hf": ("InternVLConfig", "InternVLForConditionalGeneration", dict(
        vision_config=dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                           image_size=[448, 448], patch_size=[14, 14]),
        text_config=dict(_QWEN2, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                         num_key_value_heads=4, vocab_size=151674), tie_word_embeddings=False)),
}


def make_extractor(modality, kind, models, device, batch_size, options):
    from feature_extraction.registry import build_extractor, extractor_options

    encoder = dict(model=models[kind], device=device, batch_size=batch_size) if kind else {}
    return build_extractor(modality, extractor_options(modality, **encoder, **options.get("options", {})), ("UTT",))


def measure(extractor, clips, out, inputs, workers, repeats):
    reports = [extract(extractor, clips, out, inputs, overwrite=True, workers=workers, progress=False)
               for _ in range(repeats)]
    failed = len(reports[-1].failed)
    seconds = statistics.median(r.seconds for r in reports)
    waiting = statistics.median(r.decode_s / max(r.seconds, 1e-9) for r in reports)
    return reports[-1].done / seconds, seconds, waiting, failed


def prepare(root, clips, hidden, layers, base):
    from preprocess import make_demo_clips, make_demo_encoders

    data = os.path.join(root, "release")
    make_demo_clips.main(["--out", data, "--clips", str(clips), "--overwrite"])
    models = {}
    build, folder = make_demo_encoders.build_encoder, make_demo_encoders.encoder_folder
    for kind in ("hubert", "bert", "vit", "videomae") + LLM_KINDS:
        models[kind] = build(kind, os.path.join(root, "models", folder(kind)), hidden, layers)
        if base and kind in make_demo_encoders.BASE_BUILDERS:
            models[f"{kind}-base"] = build(kind, os.path.join(root, "models", folder(kind, base=True)), base=True)
    return data, models


def weight_memory():
    """Parameters and float16 weight memory of the real-size multimodal LLMs, built on the meta device."""
    import torch

    from feature_extraction.encoders import transformers_offline

    t = transformers_offline()
    gib = lambda module: 2 * sum(p.numel() for p in module.parameters()) / 2 ** 30  # noqa: E731
    print("| model | parameters | float16 checkpoint | on the device: tower states | lm states |")
    print("|---|---:|---:|---:|---:|")
    for name, (config_class, model_class, shapes) in REAL_SIZE.items():
        with torch.device("meta"):
            model = getattr(t, model_class)(getattr(t, config_class)(**shapes))
        tower = f"{gib(model.model.audio_tower):.2f} GiB" if hasattr(model.model, "audio_tower") else "-"
        count = sum(p.numel() for p in model.parameters()) / 1e9
        print(f"| {name} | {count:.2f} B | {gib(model):.2f} GiB | {tower} | {gib(model.model):.2f} GiB |")
    print("\nlm states load the model without its output head (AutoModel); tower states keep the audio tower alone "
          "on the device (the checkpoint is read whole into CPU memory first).")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--base", action="store_true", help="also run base-size encoders")
    parser.add_argument("--skip", nargs="*", default=[], help="modalities or words of row names to leave out (e.g. opensmile Haar)")
    parser.add_argument("--memory", action="store_true", help="only print the float16 weights of the real-size LLMs")
    args = parser.parse_args(argv)
    if args.memory:
        return weight_memory()
    from feature_extraction.faces import HaarFaces
    from toolkit.device import pick_device

    device = pick_device(args.device)
    with tempfile.TemporaryDirectory() as root:
        data, models = prepare(root, args.clips, args.hidden, args.layers, args.base)
        runs = RUNS + ([(f"{row} base", m, f"{k}-base", i) for row, m, k, i in RUNS if f"{k}-base" in models]
                       if args.base else [])
        print(f"{args.clips} clips of the raw-clip demo, device {device}, encoders {args.hidden} wide x {args.layers} "
              f"layers{' (+ base-size architectures)' if args.base else ''}; median of {args.repeats} runs\n")
        print("| extraction | workers | clips/s | s per run | waiting for decoding | failed |")
        print("|---|---:|---:|---:|---:|---:|")
        for row, modality, kind, options in [r for r in runs if not any(s == r[1] or s in r[0] for s in args.skip)]:
            subtitles = os.path.join(data, "subtitle_chieng.csv") if modality == "text" else None
            clips = find_clips(data, subtitles=subtitles)
            extractor = make_extractor(modality, kind, models, args.device, args.batch_size, options)
            detector = HaarFaces() if options.get("faces") == "detect" else None
            inputs = Inputs(fps=options.get("fps", 3.0), faces=options.get("faces", "release"), detector=detector)
            for workers in args.workers:
                rate, seconds, waiting, failed = measure(extractor, clips, os.path.join(root, "out"), inputs, workers,
                                                         args.repeats)
                print(f"| {row} | {workers} | {rate:.1f} | {seconds:.2f} | {100 * waiting:.0f}% | {failed} |", flush=True)


if __name__ == "__main__":
    main()

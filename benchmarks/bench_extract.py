"""Extraction throughput: clips/s and the share of time the main process waits for decoding.

    python benchmarks/bench_extract.py [--clips 48] [--repeats 3] [--workers 0 2] [--device auto]
        [--hidden 64 --layers 4] [--base]

Makes the raw-clip demo (preprocess/make_demo_clips.py) and small random encoders
(preprocess/make_demo_encoders.py; ``--base`` adds the architectures and input sizes of chinese-hubert-base,
bert-base, vit-base-patch16-224 and videomae-base, with random weights), then runs every extraction over all clips ``--repeats`` times
with ``--overwrite`` and prints the median clips/s, seconds per run and the share of the run the main
process spent waiting for decoding workers (the rest is encoding and writing). With ``--workers 0`` decoding
runs in the main process, so the share is the decoding part of the work itself. On a GPU (``--device cuda``,
or auto where one is present) the encoders run in float16.
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

RUNS = [  # (row, modality, encoder kind or None, inputs)
    ("opensmile eGeMAPSv02 (audio)", "opensmile", None, {}),
    ("hubert (audio)", "audio", "hubert", {}),
    ("bert (subtitles)", "text", "bert", {}),
    ("vit (release face crops, 3 fps)", "visual", "vit", {"faces": "release"}),
    ("vit (Haar-detected faces, 3 fps)", "visual", "vit", {"faces": "detect"}),
    ("videomae (whole frames, 8 fps)", "visual", "videomae", {"faces": "none", "fps": 8.0}),
    ("openface CSV parsing", "openface", None, {}),
]


def make_extractor(modality, kind, models, device, batch_size):
    from feature_extraction.registry import build_extractor, extractor_options

    encoder = dict(model=models[kind], device=device, batch_size=batch_size) if kind else {}
    return build_extractor(modality, extractor_options(modality, **encoder), ("UTT",))


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
    for kind in ("hubert", "bert", "vit", "videomae"):
        models[kind] = make_demo_encoders.build_encoder(kind, os.path.join(root, "models", kind), hidden, layers)
        if base:
            models[f"{kind}-base"] = make_demo_encoders.build_encoder(kind, os.path.join(root, "models", f"{kind}-base"),
                                                                      base=True)
    return data, models


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
    args = parser.parse_args(argv)
    from feature_extraction.faces import HaarFaces
    from toolkit.device import pick_device

    device = pick_device(args.device)
    with tempfile.TemporaryDirectory() as root:
        data, models = prepare(root, args.clips, args.hidden, args.layers, args.base)
        runs = RUNS + ([(f"{row} base", m, f"{k}-base", i) for row, m, k, i in RUNS if k] if args.base else [])
        print(f"{args.clips} clips of the raw-clip demo, device {device}, encoders {args.hidden} wide x {args.layers} "
              f"layers{' (+ base-size architectures)' if args.base else ''}; median of {args.repeats} runs\n")
        print("| extraction | workers | clips/s | s per run | waiting for decoding | failed |")
        print("|---|---:|---:|---:|---:|---:|")
        for row, modality, kind, options in [r for r in runs if not any(s == r[1] or s in r[0] for s in args.skip)]:
            subtitles = os.path.join(data, "subtitle_chieng.csv") if modality == "text" else None
            clips = find_clips(data, subtitles=subtitles)
            extractor = make_extractor(modality, kind, models, args.device, args.batch_size)
            detector = HaarFaces() if options.get("faces") == "detect" else None
            inputs = Inputs(fps=options.get("fps", 3.0), faces=options.get("faces", "release"), detector=detector)
            for workers in args.workers:
                rate, seconds, waiting, failed = measure(extractor, clips, os.path.join(root, "out"), inputs, workers,
                                                         args.repeats)
                print(f"| {row} | {workers} | {rate:.1f} | {seconds:.2f} | {100 * waiting:.0f}% | {failed} |", flush=True)


if __name__ == "__main__":
    main()

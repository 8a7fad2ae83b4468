"""Memory and time of extraction on long audio, before and after streaming: openSMILE and a speech encoder over
one generated .wav track of each length.

    python benchmarks/bench_long_audio.py [--minutes 10 40 120] [--cases opensmile hubert] [--repeats 1]

Cases (each through the runner, ``feature_extraction.runner.extract``, with ``--workers 0``):

* ``opensmile``: eGeMAPSv02 functionals and low-level descriptors (``--level utt frm``). Before: the whole
  waveform decoded into one array, then ``process_signal`` once per level (``whole_clip=True``, the earlier
  path). After: the track streamed through openSMILE as it decodes, functionals from 300 s pieces.
* ``hubert``: a small random HuBERT (64 wide, 4 layers; ``preprocess/make_demo_encoders.py``), utterance level.
  Before: the whole waveform, every 10 s piece prepared at once (``whole_clip=True``). After: the track
  streamed and, past ``AudioEncoder.LONG_S``, decoded and encoded piece by piece.

Each run is a child process of its own, so its peak resident memory (VmHWM) is that case's alone; the
table shows it, the child's resident memory when the extraction began (Python, numpy, torch, the model) and
the extraction's seconds (the median over ``--repeats`` children). The features of the two paths are then
compared. The track is a voiced tone whose pitch and loudness drift, with pauses, written 10 s at a time.
Threads: OMP_NUM_THREADS=1 and one torch thread, as on the 2-core machine the figures were measured on.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

SR = 16000
LEVELS = {"opensmile": ("UTT", "FRM"), "hubert": ("UTT",)}


def track_pieces(minutes, piece_s=10):
    """The generated track, 10 s at a time: harmonics of a drifting pitch, a 4 Hz syllable rhythm, pauses."""
    rng = np.random.default_rng(0)
    for start in range(0, int(minutes * 60), piece_s):
        t = start + np.arange(piece_s * SR) / SR
        f0 = 150 + 50 * np.sin(2 * np.pi * t / 37) + 20 * np.sin(2 * np.pi * t / 5.3)
        phase = 2 * np.pi * np.cumsum(f0) / SR
        voice = sum(np.sin(k * phase) / k for k in range(1, 6)) / 2.3
        envelope = (0.2 + 0.1 * np.sin(2 * np.pi * t / 61)) * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t))
        talking = np.sin(2 * np.pi * t / 7.0) > -0.6
        yield (envelope * talking * voice + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


def write_track(path, minutes):
    from feature_extraction.decode import wav_tee

    for _ in wav_tee(track_pieces(minutes), path):
        pass
    return path


def memory_mb(field):
    """VmRSS (resident now) or VmHWM (peak resident) of this process in MB. Not ``ru_maxrss``: a child made by
    fork and exec starts with its parent's peak there."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024


def build(case, path, model):
    from feature_extraction.encoders import AudioEncoder
    from feature_extraction.handcrafted import OpenSmileExtractor

    whole = path == "before"
    if case == "opensmile":
        return OpenSmileExtractor("eGeMAPSv02", levels=LEVELS[case], whole_clip=whole)
    return AudioEncoder(model, levels=LEVELS[case], batch_size=4, whole_clip=whole)


def child(case, path, wav, model, out):
    """One measured run: build the extractor, extract the one track, print the figures as JSON."""
    import torch

    from feature_extraction.base import Clip
    from feature_extraction.runner import Inputs, extract

    torch.set_num_threads(1)
    extractor = build(case, path, model)
    warm_up = write_track(os.path.join(out + "-warm-up", "warm-up.wav"), 0.05)  # load every library first
    extract(extractor, [Clip(name="warm-up", audio=warm_up)], out + "-warm-up", Inputs(), workers=0, progress=False)
    began_mb = memory_mb("VmRSS")
    began = time.perf_counter()
    report = extract(extractor, [Clip(name="track", audio=wav)], out, Inputs(), overwrite=True, workers=0, progress=False)
    seconds = time.perf_counter() - began
    if report.failed:
        raise SystemExit(f"{case} {path}: {report.failed}")
    peak_mb = memory_mb("VmHWM")
    print(json.dumps({"peak_mb": peak_mb, "began_mb": began_mb, "seconds": seconds, "name": extractor.name}))


def measure(case, path, wav, model, out, repeats):
    runs = []
    for _ in range(repeats):
        done = subprocess.run([sys.executable, __file__, "--child", case, path, wav, model or "-", out],
                              capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if done.returncode != 0:
            raise SystemExit(f"{case} {path} failed:\n{done.stderr[-2000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {"peak_mb": max(r["peak_mb"] for r in runs), "began_mb": statistics.median(r["began_mb"] for r in runs),
            "seconds": statistics.median(r["seconds"] for r in runs), "name": runs[0]["name"]}


def compare(name, levels, before, after):
    """How far the after path's features are from the before path's."""
    parts = []
    for level in levels:
        a, b = (np.load(os.path.join(root, f"{name}-{level}", "track.npy")) for root in (before, after))
        if a.shape != b.shape:
            parts.append(f"{level} shapes {a.shape} vs {b.shape}")
            continue
        relative = np.abs(b - a) / np.maximum(np.abs(a), 1e-3)
        parts.append(f"{level} {a.shape}: {'identical' if np.array_equal(a, b) else f'max |diff| {np.abs(b - a).max():.3g}'}"
                     f", median relative {np.median(relative):.2g}, max relative {relative.max():.2g}")
    return "; ".join(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 40, 120])
    parser.add_argument("--cases", nargs="+", default=["opensmile", "hubert"], choices=["opensmile", "hubert"])
    parser.add_argument("--repeats", type=int, default=1, help="children per case and path (median seconds, max memory)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        case, path, wav, model, out = args.child
        return child(case, path, wav, None if model == "-" else model, out)
    from preprocess.make_demo_encoders import build_encoder

    with tempfile.TemporaryDirectory() as root:
        model = build_encoder("hubert", os.path.join(root, "hubert"), hidden=64, layers=4) if "hubert" in args.cases else None
        print(f"peak resident memory of one child process per run (MB), seconds of the extraction; {args.repeats} run(s) "
              f"each\n\n| case | minutes | path | peak RSS MB | RSS at start MB | extraction s |\n|---|---:|---|---:|---:|---:|")
        notes = []
        for minutes in args.minutes:
            wav = write_track(os.path.join(root, f"track{minutes:g}.wav"), minutes)
            for case in args.cases:
                outs = {path: os.path.join(root, f"{case}-{minutes:g}-{path}") for path in ("before", "after")}
                for path, out in outs.items():
                    fig = measure(case, path, wav, model, out, args.repeats)
                    print(f"| {case} | {minutes:g} | {path} | {fig['peak_mb']:.0f} | {fig['began_mb']:.0f} | "
                          f"{fig['seconds']:.1f} |", flush=True)
                notes.append(f"{case}, {minutes:g} min: {compare(fig['name'], LEVELS[case], outs['before'], outs['after'])}")
            os.remove(wav)
        print("\nafter vs before:\n" + "\n".join(notes))


if __name__ == "__main__":
    main()

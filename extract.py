"""Extract per-clip features from the raw release into feature folders (<out>/<name>-UTT|-FRM/<clip>.npy).

    python extract.py --data DATA --modality audio  --model models/chinese-hubert-large
    python extract.py --data DATA --modality text   --model models/chinese-roberta-wwm-ext --lang chinese
    python extract.py --data DATA --modality visual --model models/clip-vit-large-patch14   # face crops
    python extract.py --data DATA --modality visual --model models/videomae-base --level utt frm
    python extract.py --data DATA --modality opensmile --level utt frm                       # eGeMAPSv02
    python extract.py --data DATA --modality openface  --level frm utt                       # OpenFace 2 CSVs

DATA is the release folder: video/<name>.mp4|.avi, audio/<name>.wav (optional), openface_face/<name>/<name>.npy,
subtitle_chieng.csv. Models load from a local folder (or the local Hugging Face cache) and never download.
Clips whose outputs exist are skipped (--overwrite redoes them); --shard K/N (or torchrun/SLURM ranks)
splits the clips between processes with no coordination. Clips that cannot be used (no audio stream,
unreadable file, no subtitle, no face) are listed at the end and in <out>/extract-<name>.failed.csv.
Afterwards: python preprocess/check_feat_dim.py --root <out> --emit-config >> config.py

Threads: the encoder computes with --threads N PyTorch threads. By default (auto) N is the CPUs this process may
use (affinity mask, cgroup quota), less the machine's other load when it is shared, divided by torchrun's
LOCAL_WORLD_SIZE; OMP_NUM_THREADS (or MKL_NUM_THREADS) replaces that choice when set, and --threads N wins over
both. The --workers decoding processes compute with one thread each and are not subtracted: decoding is the
small part of a CPU encoder's work, and they wait on a full queue meanwhile. The count chosen is printed first.
"""
import argparse
import os

from feature_extraction.encoders import local_gpu  # noqa: F401 (extract.local_gpu, as before)
from feature_extraction.registry import (add_options, build_extractor, check_needed, describe_extractors, extractor_class,
                                         known_extractors)
from toolkit.errors import ArgumentParser, UserError, bounded, cli, is_plain_name
from toolkit.threads import add_thread_flag, describe_threads, setup_threads


def feature_name(text):
    """An argparse ``type`` for --name: it becomes the folder stem <out>/<name>-UTT, so no folders, no leading dot."""
    if not is_plain_name(text):
        raise argparse.ArgumentTypeError(f"{text!r} must be a plain folder stem such as hubert-large (no /, \\, "
                                         f"leading dot or control character); the folders go under --out")
    return text


def features_root(args):
    """--out, or DATA/features: a folder (made when needed), never a file."""
    out = args.out or os.path.join(args.data, "features")
    if os.path.exists(out) and not os.path.isdir(out):
        flag = "--out" if args.out else "--out (default DATA/features)"
        raise UserError(f"{flag} {out} is a file, not a folder; give a folder for the <name>-UTT/-FRM feature folders")
    return out


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__, epilog="extractors (--modality NAME, modality of its features, what it "
                            "does; each one's flags are in its group above):\n" + describe_extractors())
    parser.add_argument("--data", required=True, help="release folder (video/, audio/, openface_face/, subtitle_chieng.csv)")
    parser.add_argument("--modality", required=True, choices=known_extractors(), metavar="NAME",
                        help=f"the extractor: {', '.join(known_extractors())} (listed at the end)")
    parser.add_argument("--out", help="features root that receives <name>-UTT/ and <name>-FRM/ (default: DATA/features)")
    parser.add_argument("--name", type=feature_name, help="feature name (folder stem); default: the model folder's name or the feature set")
    parser.add_argument("--level", nargs="+", default=["utt"], choices=["utt", "frm"],
                        help="utt: (C,) per clip (mean over time); frm: (T, C); both: one pass writes both")
    parser.add_argument("--names", nargs="+", metavar="CSV", help="only the clips of these CSVs (column name), e.g. the "
                        "label and candidates CSVs; default: every clip in video/ (or audio/)")
    add_options(parser)
    src = parser.add_argument_group("inputs")
    src.add_argument("--subtitles", help="subtitle CSV (name, chinese, english) (default: DATA/subtitle_chieng.csv)")
    src.add_argument("--lang", default="chinese", choices=["chinese", "english"], help="subtitle column")
    src.add_argument("--fps", type=bounded(float, 0.0, low_open=True), default=3.0, help="visual: frames sampled per second")
    src.add_argument("--faces", default="release", choices=["release", "detect", "none"],
                     help="visual input: release = openface_face crops; detect = OpenCV face detection on the "
                     "video frames; none = whole frames")
    src.add_argument("--face_size", type=bounded(int, 16), default=224, help="--faces detect: crop side in pixels")
    src.add_argument("--save_wav", nargs="?", const="", metavar="DIR", help="keep the audio decoded from videos as "
                     "16 kHz .wav in DIR (default DATA/audio) and read it from there next time")
    src.add_argument("--allow_partial", action="store_true", help="use what decodes of a video or audio stream "
                     "that ends before its container says (a cut or damaged file) instead of listing the clip as failed")
    src.add_argument("--openface_dir", help="OpenFace CSVs, <name>.csv or <name>/<name>.csv (default: DATA/openface)")
    src.add_argument("--openface_bin", help="OpenFace 2 FeatureExtraction binary: run it for clips without a CSV")
    run = parser.add_argument_group("run")
    run.add_argument("--workers", type=bounded(int, 0), default=2, help="decoding processes (0: decode in the main process)")
    add_thread_flag(run)
    run.add_argument("--shard", help="K/N: this process does the clips of shard K of N (0-based)")
    run.add_argument("--overwrite", action="store_true", help="redo clips whose outputs exist")
    run.add_argument("--no_progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    check_needed(args.modality, args)
    features_root(args)
    return args


def build_inputs(args, source):
    from feature_extraction.runner import Inputs

    detector = None
    if source in ("images", "video") and args.faces == "detect":
        from feature_extraction.faces import HaarFaces

        detector = HaarFaces(size=args.face_size)
        detector.detector()  # a missing cascade is reported before any clip is read
    save_wav = None if args.save_wav is None else (args.save_wav or os.path.join(args.data, "audio"))
    out = os.path.join(features_root(args), ".openface")
    return Inputs(fps=args.fps, faces=args.faces, detector=detector, save_wav=save_wav, openface_bin=args.openface_bin,
                  openface_dir=args.openface_dir or os.path.join(args.data, "openface"), openface_out=out,
                  allow_partial=args.allow_partial)


@cli
def main(argv=None):
    args = parse_args(argv)
    from feature_extraction.release import find_clips
    from feature_extraction.runner import extract, parse_shard, write_failures

    shard = parse_shard(args.shard)
    levels = tuple(dict.fromkeys(level.upper() for level in args.level))
    source = extractor_class(args.modality).source
    subtitles = None
    if source == "text":
        subtitles = args.subtitles or os.path.join(args.data, "subtitle_chieng.csv")
    clips = find_clips(args.data, args.names or (), subtitles=subtitles, lang=args.lang, openface_dir=args.openface_dir)
    setup_threads(args.threads)
    extractor = build_extractor(args.modality, args, levels)
    out = features_root(args)
    inputs = build_inputs(args, extractor.source)
    print(f"{extractor.describe()}: {len(clips)} clips → {', '.join(os.path.join(out, f'{extractor.name}-{lv}') for lv in levels)}"
          + (f" (shard {shard[0]}/{shard[1]})" if shard[1] > 1 else "") + f"; {describe_threads()}", flush=True)
    report = extract(extractor, clips, out, inputs, overwrite=args.overwrite, shard=shard, workers=args.workers,
                     progress=not args.no_progress)
    failures = os.path.join(out, f"extract-{extractor.name}" + (f".shard{shard[0]}of{shard[1]}" if shard[1] > 1 else "") + ".failed.csv")
    write_failures(failures, report.failed)
    print(report.summary(extractor.name) + (f"\n  all failures: {failures}" if report.failed else ""))
    if report.failed and report.done == 0 and report.existing == 0:
        raise UserError(f"no clip could be used ({len(report.failed)} failed, first: {next(iter(report.failed.items()))[1]}); "
                        f"see {failures}")
    print(f"registered in {record_features(extractor, out)} (train with --manifests, or include it in config.py)")


def record_features(extractor, out):
    """Add the folders this extractor wrote to OUT/features.yaml with their modality, level and width."""
    from dataloader.registry import write_manifest

    entries = {info.name: {"dim": info.dim, "modality": info.modality, "level": info.level.lower(), "folder": info.name}
               for info in extractor.features()}
    return write_manifest(out, entries, "extract.py")


if __name__ == "__main__":
    main()

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
"""
import os

from toolkit.errors import ArgumentParser, UserError, bounded, cli

MODALITIES = ("audio", "text", "visual", "opensmile", "openface")
NEEDS_MODEL = ("audio", "text", "visual")


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help="release folder (video/, audio/, openface_face/, subtitle_chieng.csv)")
    parser.add_argument("--modality", required=True, choices=MODALITIES,
                        help="audio, text or visual (a Hugging Face encoder, --model), opensmile or openface")
    parser.add_argument("--model", help="Hugging Face checkpoint folder (or a hub id already in the local cache)")
    parser.add_argument("--out", help="features root that receives <name>-UTT/ and <name>-FRM/ (default: DATA/features)")
    parser.add_argument("--name", help="feature name (folder stem); default: the model folder's name or the feature set")
    parser.add_argument("--level", nargs="+", default=["utt"], choices=["utt", "frm"],
                        help="utt: (C,) per clip (mean over time); frm: (T, C); both: one pass writes both")
    parser.add_argument("--names", nargs="+", metavar="CSV", help="only the clips of these CSVs (column name), e.g. the "
                        "label and candidates CSVs; default: every clip in video/ (or audio/)")
    enc = parser.add_argument_group("encoders")
    enc.add_argument("--layers", help="hidden layers averaged: last4, lastK, -1, 9,10,11,12, or pooled (default: last4 "
                     "for audio and text, pooled for visual)")
    enc.add_argument("--batch_size", type=bounded(int, 1), default=16, help="clips (text), pieces (audio), frames "
                     "(images) or segments (video) per forward pass")
    enc.add_argument("--device", default="auto", help="auto, cpu or cuda")
    enc.add_argument("--gpu", type=bounded(int, 0), default=None, help="CUDA device index (default: LOCAL_RANK or "
                     "SLURM_LOCALID when set, so torchrun/srun processes take one GPU each, else 0)")
    enc.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"],
                     help="auto: float16 on GPU, float32 on CPU")
    enc.add_argument("--chunk_s", type=bounded(float, 1.0), default=10.0, help="audio: seconds per encoder piece")
    enc.add_argument("--text_pool", default="mean", choices=["mean", "first"], help="text UTT: mean over tokens or first token")
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
    hand = parser.add_argument_group("opensmile and openface")
    hand.add_argument("--feature_set", default="eGeMAPSv02", help="openSMILE set: eGeMAPSv02, GeMAPSv01b or ComParE_2016")
    hand.add_argument("--columns", default="au", help="OpenFace columns: au, au_r, au_c, pose, gaze, all, or a "
                      "comma-joined mix such as au_r,pose")
    hand.add_argument("--min_confidence", type=bounded(float, 0.0, 1.0), default=0.8,
                      help="OpenFace: frames with success=1 and at least this confidence are kept")
    hand.add_argument("--openface_dir", help="OpenFace CSVs, <name>.csv or <name>/<name>.csv (default: DATA/openface)")
    hand.add_argument("--openface_bin", help="OpenFace 2 FeatureExtraction binary: run it for clips without a CSV")
    run = parser.add_argument_group("run")
    run.add_argument("--workers", type=bounded(int, 0), default=2, help="decoding processes (0: decode in the main process)")
    run.add_argument("--shard", help="K/N: this process does the clips of shard K of N (0-based)")
    run.add_argument("--overwrite", action="store_true", help="redo clips whose outputs exist")
    run.add_argument("--no_progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.modality in NEEDS_MODEL and not args.model:
        raise UserError(f"--modality {args.modality} needs --model <folder of a Hugging Face checkpoint>")
    return args


def local_gpu(gpu, env=os.environ):
    """--gpu, else this process's local rank under torchrun (LOCAL_RANK) or srun (SLURM_LOCALID), else 0."""
    if gpu is not None:
        return gpu
    for name in ("LOCAL_RANK", "SLURM_LOCALID"):
        if env.get(name, "").isdigit():
            return int(env[name])
    return 0


def build_extractor(args, levels):
    """The extractor --modality names, with its options."""
    if args.modality == "opensmile":
        from feature_extraction.handcrafted import OpenSmileExtractor

        extractor = OpenSmileExtractor(feature_set=args.feature_set, levels=levels)
    elif args.modality == "openface":
        from feature_extraction.handcrafted import OpenFaceExtractor

        extractor = OpenFaceExtractor(columns=args.columns, min_confidence=args.min_confidence, levels=levels)
    else:
        from feature_extraction import encoders
        from toolkit.device import pick_device

        common = dict(levels=levels, layers=args.layers, device=pick_device(args.device, local_gpu(args.gpu)), dtype=args.dtype,
                      batch_size=args.batch_size, name=args.name)
        if args.modality == "audio":
            return encoders.AudioEncoder(args.model, chunk_s=args.chunk_s, **common)
        if args.modality == "text":
            return encoders.TextEncoder(args.model, pool=args.text_pool, **common)
        return encoders.ENCODERS[encoders.visual_kind(args.model)](args.model, **common)
    if args.name:
        extractor.name = args.name
    return extractor


def build_inputs(args):
    from feature_extraction.runner import Inputs

    detector = None
    if args.modality == "visual" and args.faces == "detect":
        from feature_extraction.faces import HaarFaces

        detector = HaarFaces(size=args.face_size)
        detector.detector()  # a missing cascade is reported before any clip is read
    save_wav = None if args.save_wav is None else (args.save_wav or os.path.join(args.data, "audio"))
    out = os.path.join(args.out or os.path.join(args.data, "features"), ".openface")
    return Inputs(fps=args.fps, faces=args.faces, detector=detector, save_wav=save_wav,
                  openface_bin=args.openface_bin, openface_out=out)


@cli
def main(argv=None):
    args = parse_args(argv)
    from feature_extraction.release import find_clips
    from feature_extraction.runner import extract, parse_shard, write_failures

    shard = parse_shard(args.shard)
    levels = tuple(dict.fromkeys(level.upper() for level in args.level))
    subtitles = None
    if args.modality == "text":
        subtitles = args.subtitles or os.path.join(args.data, "subtitle_chieng.csv")
    clips = find_clips(args.data, args.names or (), subtitles=subtitles, lang=args.lang, openface_dir=args.openface_dir)
    extractor = build_extractor(args, levels)
    out = args.out or os.path.join(args.data, "features")
    inputs = build_inputs(args)
    print(f"{extractor.describe()}: {len(clips)} clips → {', '.join(os.path.join(out, f'{extractor.name}-{lv}') for lv in levels)}"
          + (f" (shard {shard[0]}/{shard[1]})" if shard[1] > 1 else ""), flush=True)
    report = extract(extractor, clips, out, inputs, overwrite=args.overwrite, shard=shard, workers=args.workers,
                     progress=not args.no_progress)
    failures = os.path.join(out, f"extract-{extractor.name}" + (f".shard{shard[0]}of{shard[1]}" if shard[1] > 1 else "") + ".failed.csv")
    write_failures(failures, report.failed)
    print(report.summary(extractor.name) + (f"\n  all failures: {failures}" if report.failed else ""))
    if report.failed and report.done == 0 and report.existing == 0:
        raise UserError(f"no clip could be used ({len(report.failed)} failed, first: {next(iter(report.failed.items()))[1]}); "
                        f"see {failures}")


if __name__ == "__main__":
    main()

"""Predict a list of clips with a trained run, or with the average of K fold runs of one configuration.

    python predict.py --run saved/demo/seed0 --names data/demo/test.csv --out saved/demo/preds/seed0
    python predict.py --fold_runs saved/demo/fold0 saved/demo/fold1 saved/demo/fold2 --names data/demo/test.csv --out DIR

--names is a CSV with a column ``name`` (a folder or extension in a name is dropped). Writes
DIR/preds.npz (names, classes, probs[, valence], valid_f1, run_dirs, features; read by ensemble.py) and
DIR/preds.csv (name, discrete[, valence]). When the CSV also has a ``discrete`` column, accuracy,
weighted F1 and a per-class table are printed and saved (DIR/metrics.json, DIR/confusion.png).
Clips follow the run's data rules: a run trained with --allow_missing predicts clips that lack some feature
files with those experts masked (other runs refuse them), and frame features use the run's --max_frames.

DIR is written as train.py writes a run dir: in one rename when everything is written. Predictions already in
DIR are kept beside it as .<DIR>.prev-<their time> (--overwrite replaces them); a file or a folder of
something else at DIR is refused and left as it is.
"""
import os

from toolkit.device import add_device_flags
from toolkit.errors import ArgumentParser, UserError, bounded, cli
from toolkit.threads import add_thread_flag


def build_parser():
    p = ArgumentParser(description=__doc__)
    runs = p.add_mutually_exclusive_group(required=True)
    runs.add_argument("--run", help="run directory written by train.py --save_model (holds the checkpoint)")
    runs.add_argument("--fold_runs", nargs="+", metavar="RUN", help="run directories whose probabilities are averaged")
    p.add_argument("--names", required=True, help="CSV with column 'name' (optional 'discrete' labels are scored)")
    p.add_argument("--out", required=True, help="output folder for preds.npz, preds.csv (and metrics.json, confusion.png)")
    add_thread_flag(add_device_flags(p))
    p.add_argument("--batch_size", type=bounded(int, 1), default=1024, help="clips per forward pass (results do not depend on it)")
    p.add_argument("--cache_dir", default=None, help="packed feature cache; 'none' disables it (default: config.PATH_TO_CACHE)")
    p.add_argument("--manifests", default="", help="feature manifests (features.yaml, comma-separated) to register besides config.py's")
    p.add_argument("--no_progress", action="store_true", help="no tqdm bar")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the predictions already in --out (default: keep them as .<out>.prev-<their time>)")
    return p


def run(args):
    """Predict, write the outputs and return (predictions dict, metrics or None)."""
    from dataloader.registry import Registry
    from toolkit.device import pick_device
    from toolkit.threads import describe_threads, setup_threads
    from toolkit.metrics import emotion_metrics, format_report
    from inference.predictor import load_runs, predict_runs
    from toolkit.runs import PredictionsDir
    from toolkit.tables import encode_labels, read_table

    if args.batch_size < 1:
        raise UserError("--batch_size must be at least 1")
    with PredictionsDir(args.out, args.overwrite) as claim:  # a bad --out is refused before any work
        table = read_table(args.names, "names CSV")
        device = pick_device(args.device, args.gpu)
        setup_threads(args.threads)
        runs = load_runs(args.fold_runs or [args.run], device)
        classes = runs[0][1]["classes"]
        labels = None
        if "discrete" in table.columns:
            labels = encode_labels(table["discrete"], classes, f"names CSV {args.names}, column 'discrete'")
        names = table["name"].tolist()

        registry = Registry.from_config(manifests=[m for m in args.manifests.split(",") if m])
        preds = predict_runs(runs, names, device, registry, args.batch_size, args.cache_dir, progress=not args.no_progress)
        metrics = None if labels is None else emotion_metrics(labels, preds["probs"].argmax(1), classes)
        kept = claim.previous
        with claim.staged() as stage:
            write_outputs(stage, args, preds, metrics)
    what = f"{len(runs)} fold runs" if args.fold_runs else args.run
    print(f"predicted {len(names)} clips with {what} on {device} ({describe_threads()}) → {args.out}/preds.npz, preds.csv")
    if kept:
        print(f"the previous predictions in {args.out} are kept as {kept} (--overwrite replaces them)")
    if metrics is not None:
        print(format_report(metrics, classes))
    return preds, metrics


def write_outputs(folder, args, preds, metrics):
    """preds.npz, preds.csv and, with labels, metrics.json and confusion.png into ``folder``."""
    import pandas as pd

    from toolkit.io import save_text
    from toolkit.metrics import save_report
    from inference.predictor import save_preds

    classes = preds["classes"]
    csv = pd.DataFrame({"name": preds["names"], "discrete": [classes[i] for i in preds["probs"].argmax(1)]})
    if preds["valence"] is not None:
        csv["valence"] = preds["valence"]
    save_preds(os.path.join(folder, "preds.npz"), preds)
    save_text(os.path.join(folder, "preds.csv"), csv.to_csv(index=False, float_format="%.4f"))
    if metrics is not None:
        save_report(folder, metrics, classes, os.path.basename(os.path.normpath(args.out)),
                    extra={"names_csv": args.names, "run_dirs": preds["run_dirs"], "n": len(preds["names"])})


@cli
def main(argv=None):
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()

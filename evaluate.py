"""Score a submission against labels: weighted F1 (the challenge metric) and accuracy.

    python evaluate.py --truth data/demo/test_labels.csv --pred saved/demo/submission.csv [--out DIR]

Every clip of --truth (columns name, discrete) must have a row in --pred (columns name, discrete);
extra prediction rows are allowed (only a hidden subset of the candidates is scored) and reported.
With --out, metrics.json and confusion.png are written there.
"""

from toolkit.errors import ArgumentParser, cli


def build_parser():
    p = ArgumentParser(description=__doc__)
    p.add_argument("--truth", required=True, help="CSV with columns name, discrete")
    p.add_argument("--pred", required=True, help="submission CSV with columns name, discrete")
    p.add_argument("--emo_rule", default="MER", help="class list key in config.EMO_RULE")
    p.add_argument("--out", default=None, help="folder for metrics.json and confusion.png (None: print only)")
    return p


def run(args):
    """Metrics dict of the predictions over the truth's clips."""
    from toolkit.metrics import emotion_metrics, format_report, save_report
    from toolkit.tables import encode_labels, index_of, read_table

    from dataloader.registry import Registry

    classes = Registry.from_config().classes(args.emo_rule)
    truth = read_table(args.truth, "truth CSV", ("name", "discrete"))
    pred = read_table(args.pred, "prediction CSV", ("name", "discrete"))
    rows = index_of(pred["name"].tolist(), truth["name"].tolist(), "truth clips", f"prediction CSV {args.pred}")
    labels = encode_labels(truth["discrete"], classes, f"truth CSV {args.truth}")
    preds = encode_labels(pred["discrete"].to_numpy()[rows], classes, f"prediction CSV {args.pred}")
    metrics = emotion_metrics(labels, preds, classes)
    extra = len(pred) - len(truth)
    print(f"scored {len(truth)} clips of {args.truth}" + (f"; {extra} other prediction rows are not scored" if extra else ""))
    print(format_report(metrics, classes))
    if args.out:
        save_report(args.out, metrics, classes, args.pred, extra={"truth": args.truth, "pred": args.pred, "n": len(truth)})
    return metrics


@cli
def main(argv=None):
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()

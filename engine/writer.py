"""The files a run directory holds besides its log: the metrics, the settings (flat, and the resolved TrainConfig),
the best epoch's validation results, the summary, plots and (with save_model) the checkpoint. Their names are
toolkit.runs's."""
import os
import time

import numpy as np


def args_record(args, result, run_dir):
    """args.yaml: the run's settings, flat as earlier runs wrote them (the model's settings beside the training
    ones, and nested under ``hparams`` too), plus what it derived from the data (n_train, feat_dims, feat_levels,
    num_classes, start_time)."""
    record = args.to_dict()
    hparams = record["hparams"]
    return {**{k: v for k, v in hparams.items() if k not in record}, **record, "run_dir": run_dir, **result.data.derived()}


def write_metrics(stage, result):
    from toolkit.io import save_text

    history = [e.row() for e in result.history]
    columns = list(history[0])
    rows = [",".join(str(h[c]) if isinstance(h[c], (int, np.integer)) else f"{float(h[c]):.6f}" for c in columns) for h in history]
    from toolkit.runs import METRICS_FILE

    save_text(os.path.join(stage, METRICS_FILE), "\n".join([",".join(columns)] + rows) + "\n")


def write_valid_results(stage, result, metrics, labels):
    from toolkit.io import save_npy

    from toolkit.runs import RESULTS_FILE

    save_npy(os.path.join(stage, RESULTS_FILE), {
        "eval_names": list(result.data.valid.names),
        "eval_loss": result.best_loss,
        "eval_emoprobs": result.best_probs,
        "eval_emolabels": labels,
        "eval_emoacc": metrics["acc"],
        "eval_emofscore": metrics["f1"],
        "eval_valpreds": result.best_vals,
    })


def summarize(args, result, metrics):
    """summary.json: what scripts read about a finished run."""
    import torch

    data, valid = result.data, result.data.valid
    true_vals = valid.vals.cpu().numpy()
    has_val = np.isfinite(true_vals)
    return {
        "model": args.model,
        "dataset": args.dataset,
        "seed": args.seed,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "loss": result.best_loss,
        "acc": metrics["acc"],
        "f1": metrics["f1"],
        "per_class_f1": metrics["per_class_f1"],
        "confusion": metrics["confusion"],
        "classes": data.classes,
        "features": [{"name": s.name, "dim": s.dim, "modality": s.modality, "level": s.level} for s in data.specs],
        "allow_missing": bool(args.allow_missing),
        "missing": data.missing,
        "repeat": args.repeat,
        "feat_topn": {"n": args.feat_topn, "from": args.topn_from, "modalities": args.topn_modalities} if args.feat_topn else None,
        "valence_mse": float(np.mean((result.best_vals[has_val] - true_vals[has_val]) ** 2)) if has_val.any() else None,
        "n_train": data.n_train,
        "n_valid": len(valid),
        "seconds_per_epoch": result.seconds_per_epoch,
        "seconds_total": round(time.time() - data.start_time, 3),
        "device": str(result.device),
        "threads": torch.get_num_threads(),
        "stopped_by": result.stopped_by,
    }


def write_plots(stage, args, result, metrics):
    from toolkit.plots import plot_confusion, plot_curves

    def column(key):
        return [getattr(e, key) for e in result.history]

    epochs, best = column("epoch"), result.best_epoch
    plot_curves(os.path.join(stage, "loss.png"), epochs, {"train": column("train_loss"), "valid": column("valid_loss")}, "loss", best)
    plot_curves(os.path.join(stage, "emoacc.png"), epochs, {"valid": column("valid_acc")}, "accuracy", best)
    plot_curves(os.path.join(stage, "emofscore.png"), epochs, {"valid": column("valid_f1")}, "weighted F1", best)
    plot_confusion(os.path.join(stage, "confusion.png"), metrics["confusion"], result.classes,
                   f"{args.model} {args.dataset} epoch {best}: F1 {metrics['f1']:.4f}")


def write_run(stage, args, result, run_dir):
    """Write the run's files into ``stage`` (the staging folder of ``run_dir``); returns the summary."""
    import yaml

    from toolkit.io import save_json, save_text
    from toolkit.metrics import emotion_metrics
    from toolkit.runs import ARGS_FILE, CHECKPOINT_FILE, CONFIG_FILE, SUMMARY_FILE, run_file, save_checkpoint

    write_metrics(stage, result)
    dump = lambda record: yaml.safe_dump(record, sort_keys=True, allow_unicode=True)  # noqa: E731
    save_text(run_file(stage, CONFIG_FILE), dump({**args.to_dict(), "run_dir": run_dir}))
    save_text(run_file(stage, ARGS_FILE), dump(args_record(args, result, run_dir)))
    labels = result.data.valid.labels.cpu().numpy()
    metrics = emotion_metrics(labels, result.best_probs.argmax(1), result.classes)
    write_valid_results(stage, result, metrics, labels)
    summary = summarize(args, result, metrics)
    save_json(run_file(stage, SUMMARY_FILE), summary)
    if not args.no_plots:
        write_plots(stage, args, result, metrics)
    if args.save_model:
        result.model.load_state_dict(result.best_state)
        save_checkpoint(run_file(stage, CHECKPOINT_FILE), result.model, result.meta)
    return summary


def best_line(result):
    s = result.summary
    return f"BEST: epoch:{result.best_epoch}, loss:{result.best_loss:.4f}, acc:{s['acc']:.4f}, f-score:{s['f1']:.4f}"

"""Train and validate a feature-expert model (default: MoE) on one split dict.

    python train.py                                   # demo features, train_lst/seed0.npy
    python train.py --dataset seed1 --feat "['demo-clip-UTT','demo-hubert-UTT']" --save_model
    python train.py --model auto_attention --hidden_dim 64 --help
    python train.py --config saved/tune/moe/best.yaml            # settings from a YAML file (tune.py writes one)
    python train.py --folds 5 --feat "['a','b']"                 # fold0..fold4.npy into <run_dir>/fold0..fold4
    python train.py --manifests data/mine/features/features.yaml --feat "['hubert-UTT']"   # a data set's manifest

A run is one ``engine.TrainConfig``: these flags are generated from its fields, and every setting of the chosen
model (its config dataclass in models/) is a flag too (``--hp.NAME`` where a model setting shares a training
setting's name). Precedence: defaults < --config YAML < flags. The run directory
(<save_root>/<dataset>/<model>/run, or --run_dir) gets info.log, config.yaml (the resolved TrainConfig),
args.yaml, metrics.csv, best_valid_results.npy, summary.json, plots and, with --save_model, best.pth. The last
stdout line is ``BEST: epoch:E, loss:L, acc:A, f-score:F``.

This script parses the flags into a TrainConfig and calls ``engine.run`` (Python callers do that directly).
"""
from toolkit.errors import cli

def parse_config(argv=None):
    """The TrainConfig of a command line (not yet resolved against the registry)."""
    from engine.flags import parse_config as parse

    return parse(argv, __doc__)


def parse_args(argv=None, registry=None):
    """The resolved TrainConfig of a command line: paths, features and the model's settings filled in."""
    from dataloader.registry import Registry

    cfg = parse_config(argv)
    return cfg.resolved(registry or Registry.from_config(manifests=cfg.manifests))


def run(args, callbacks=()):
    """Train into the run directory (engine.run); returns its summary (with --folds: the folds' summary;
    None on ranks other than 0 under torchrun)."""
    import engine

    return engine.run(args, callbacks=callbacks).summary


@cli
def main(argv=None):
    return run(parse_config(argv))


if __name__ == "__main__":
    main()

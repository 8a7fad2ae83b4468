"""The training engine: a run is one ``TrainConfig``; ``run`` trains it into a run directory (``fit``: epoch
loop, validation, best epoch, early stopping, divergence check, with an epoch hook; ``load_data``: the data).

    from engine import TrainConfig, run
    cfg = TrainConfig(feat=["demo-clip-UTT", "demo-hubert-UTT"], epochs=20)
    result = run(cfg, callbacks=[lambda e: print(e.epoch, e.valid_f1)])   # writes the run dir; result.summary
    cfg = TrainConfig.load("saved/seed0/moe/run/config.yaml")            # a run's resolved config, or any YAML

    from dataloader.registry import Registry                               # no files at all:
    registry = Registry.from_config(); args = cfg.resolved(registry)
    result = fit(args, load_data(args, registry))
"""
from engine.callbacks import EarlyStopping, EpochEnd, Prune, Stop
from engine.config import TrainConfig
from engine.data import RunData, load_data
from engine.fit import RunResult, fit
from engine.folds import FoldsResult
from engine.runner import run
from engine.writer import write_run

__all__ = ["EarlyStopping", "EpochEnd", "FoldsResult", "Prune", "RunData", "RunResult", "Stop", "TrainConfig", "fit",
           "load_data", "run", "write_run"]

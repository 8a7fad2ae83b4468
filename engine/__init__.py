"""The training engine: ``fit`` (epoch loop, validation, best epoch, early stopping, divergence check)
with an epoch hook, the data it trains on, and ``run``, which trains into a run directory.

    import train, engine
    args = train.parse_args(["--feat", "demo-clip-UTT", "--epochs", "20"])
    result = engine.run(args, callbacks=[lambda e: print(e.epoch, e.valid_f1)])   # writes the run dir
    data = engine.load_data(args); result = engine.fit(args, data)                # no files at all
"""
from engine.callbacks import EarlyStopping, EpochEnd, Prune, Stop
from engine.data import RunData, load_data
from engine.fit import RunResult, fit
from engine.runner import run
from engine.writer import write_run

__all__ = ["EarlyStopping", "EpochEnd", "Prune", "RunData", "RunResult", "Stop", "fit", "load_data", "run", "write_run"]

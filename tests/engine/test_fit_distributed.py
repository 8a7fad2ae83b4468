"""Under torchrun a stop is rank 0's decision: every rank leaves the epoch loop at the same epoch."""
import os

import pandas as pd
import torch.multiprocessing as mp

import config
import train
from engine import Stop
from tests.test_distributed import free_port
from stages.sweep import FEATURE_DICTS


class RankZeroStops:
    """Stops after ``epoch`` on rank 0 only; the other ranks' copies never would."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, epoch_end):
        import torch.distributed as dist

        return Stop("rank 0 says so") if dist.get_rank() == 0 and epoch_end.epoch >= self.epoch else None


def worker(rank, world, port, args, feature_dicts):
    import torch

    import engine

    torch.set_num_threads(1)
    for name, value in feature_dicts.items():
        setattr(config, name, value)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    result = engine.run(args, callbacks=[RankZeroStops(2)], quiet=True)
    assert len(result.history) == 2 and result.stopped_by == "RankZeroStops", (rank, len(result.history))
    assert (result.summary is not None) == (rank == 0)


def test_rank_zero_decides_the_stop_for_all_ranks(tiny_project, tmp_path):
    args = train.parse_args(tiny_project["argv"] + ["--epochs", "5", "--patience", "0", "--no_plots", "--batch_size", "32"])
    dicts = {name: getattr(config, name) for name in FEATURE_DICTS}
    mp.start_processes(worker, args=(2, free_port(), args, dicts), nprocs=2, join=True, start_method="spawn")
    assert len(pd.read_csv(tmp_path / "run" / "metrics.csv")) == 2

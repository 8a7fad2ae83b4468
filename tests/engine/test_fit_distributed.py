"""Under torchrun a stop is rank 0's decision: every rank leaves the epoch loop at the same epoch."""
import os
import socket

import pandas as pd
import torch.multiprocessing as mp

import train
from engine import Stop
from tests.conftest import project_registry
from toolkit.runs import METRICS_FILE, run_file


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RankZeroStops:
    """Stops after ``epoch`` on rank 0 only; the other ranks' copies never would."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, epoch_end):
        import torch.distributed as dist

        return Stop("rank 0 says so") if dist.get_rank() == 0 and epoch_end.epoch >= self.epoch else None


def worker(rank, world, port, args, registry):
    import torch

    import engine

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    result = engine.run(args, registry, callbacks=[RankZeroStops(2)], quiet=True)
    assert len(result.history) == 2 and result.stopped_by == "RankZeroStops", (rank, len(result.history))
    assert (result.summary is not None) == (rank == 0)


def test_rank_zero_decides_the_stop_for_all_ranks(tiny_project, tmp_path):
    registry = project_registry(tiny_project)
    args = train.parse_args(tiny_project["argv"] + ["--epochs", "5", "--patience", "0", "--no_plots", "--batch_size", "32"], registry)
    mp.start_processes(worker, args=(2, free_port(), args, registry), nprocs=2, join=True, start_method="spawn")
    assert len(pd.read_csv(run_file(tmp_path / "run", METRICS_FILE))) == 2

"""A 2-process gloo DistributedDataParallel run matches the single-process run of the same global batch."""
import json
import os
import socket

import pandas as pd
import pytest
import torch.multiprocessing as mp

import train

# Dropout masks are drawn per sample of the global batch (models.noise), so dropout stays on here.
EXACT = ["--epochs", "4", "--no_plots", "--save_model"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank, world, port, args):
    """One rank, as torchrun would start it: env vars (the tiny project's $MER_CONFIG is inherited), then train.py's run()."""
    import torch

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    train.run(args)


def run_ddp(argv, world=2):
    args = train.parse_args(argv)
    mp.start_processes(worker, args=(world, free_port(), args), nprocs=world, join=True, start_method="spawn")


# 90 training clips: batch 32 leaves a last batch of 26, batch 25 one of 15 (split 8 + 7); --val_weight 0 leaves the
# valence head without gradient (DDP's find_unused_parameters path)
@pytest.mark.parametrize("extra", [["--batch_size", "32"], ["--batch_size", "25", "--val_weight", "0", "--expert_dropout", "0.3"],
                                   ["--batch_size", "32", "--model", "auto_attention"]])
def test_two_processes_match_one(tiny_project, tmp_path, extra):
    argv = tiny_project["argv"] + EXACT + extra
    single = train.run(train.parse_args(argv + ["--run_dir", str(tmp_path / "single")]))
    run_ddp(argv + ["--run_dir", str(tmp_path / "ddp")])
    a = pd.read_csv(tmp_path / "single" / "metrics.csv").drop(columns="seconds")
    b = pd.read_csv(tmp_path / "ddp" / "metrics.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(a, b, check_exact=False, atol=1e-4, rtol=0)
    assert (a["valid_f1"] == b["valid_f1"]).all()
    ddp = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert ddp["f1"] == single["f1"] and ddp["best_epoch"] == single["best_epoch"]
    assert abs(ddp["loss"] - single["loss"]) < 1e-4
    assert (tmp_path / "ddp" / "best.pth").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".ddp")], "only rank 0 stages and writes the run dir"

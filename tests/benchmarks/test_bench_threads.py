"""bench_threads.py: its load generator never outlives its block, and the table has a row per setting."""
import pytest

from benchmarks import bench_threads


def test_the_busy_loops_are_killed_when_the_block_ends_also_on_an_error():
    with pytest.raises(KeyboardInterrupt):
        with bench_threads.busy_load(2, 0.2) as procs:
            assert len(procs) == 2 and all(proc.poll() is None for proc in procs)
            raise KeyboardInterrupt
    assert all(proc.poll() is not None for proc in procs)


def test_the_table_has_the_medians_of_each_setting(capsys):
    import argparse

    figures = {(condition, label): [{"threads": threads or 2, "epoch_s": 0.1 * k, "predict_s": 0.01 * k, "load": k, "clips": 5}
                                    for k in (1, 2, 9)]
               for condition in bench_threads.CONDITIONS for label, threads in bench_threads.SETTINGS}
    bench_threads.print_table(figures, argparse.Namespace(repeats=3, epochs=2))
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "setting" not in line]
    assert [row.split(" | ")[0][2:] for row in rows] == [label for label, _ in bench_threads.SETTINGS]
    assert rows[-1].split(" | ")[1:5] == ["1", "0.200", "0.020", "1.0-9.0"]

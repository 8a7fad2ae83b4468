"""bench_quality.py --sets: folds are written per set and every model is trained on every fold."""
import os

import numpy as np

from benchmarks import bench_quality, datasets
from tests.benchmarks.test_datasets import write_fake_mfeat


def test_compare_trains_each_model_on_each_fold(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    write_fake_mfeat(tmp_path / "src", per_class=4)
    bench = datasets.mfeat(tmp_path / "mfeat", source=str(tmp_path / "src"))
    results = bench_quality.compare([bench], ["moe", "lf_dnn"], folds=2, epochs=1, extra=["--cache_dir", "none"],
                                    run_root=str(tmp_path / "runs"))
    assert sorted(results) == [("mfeat", "lf_dnn"), ("mfeat", "moe")]
    for f1s, secs in results.values():
        assert len(f1s) == len(secs) == 2 and all(0.0 <= f <= 1.0 for f in f1s) and all(s > 0 for s in secs)
    assert sorted(os.listdir(bench.root + "/train_lst")) == ["fold0.npy", "fold1.npy"]
    assert os.path.exists(tmp_path / "runs" / "mfeat" / "moe" / "fold1" / "summary.json")
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| mfeat")]
    assert len(rows) == 2 and "±" in rows[0]
    assert np.isfinite([f for f1s, _ in results.values() for f in f1s]).all()


def test_tune_mode_trains_default_and_tuned_and_resumes(tmp_path, capsys):
    import argparse
    import json

    (tmp_path / "src").mkdir()
    write_fake_mfeat(tmp_path / "src", per_class=4)
    bench = datasets.mfeat(tmp_path / "mfeat", source=str(tmp_path / "src"))
    opts = argparse.Namespace(folds=2, epochs=1, tune=2, tune_folds=2, tune_epochs=1, extra=["--cache_dir", "none"])
    root = str(tmp_path / "runs")
    results = bench_quality.default_and_tuned([bench], ["moe"], opts, root)
    entry = results["mfeat|moe"]
    assert len(entry["default"][0]) == len(entry["tuned"][0]) == 2 and os.path.isfile(entry["best_yaml"])
    model_yaml = entry["best_yaml"].replace(".yaml", ".model.yaml")
    assert "feat" not in open(model_yaml).read() and "lr" in open(model_yaml).read()  # data keys dropped
    saved = json.load(open(os.path.join(root, "results.json")))
    assert saved["mfeat|moe"] == json.loads(json.dumps(entry))
    stamp = os.path.getmtime(os.path.join(root, "results.json"))
    assert bench_quality.default_and_tuned([bench], ["moe"], opts, root)["mfeat|moe"] == saved["mfeat|moe"]
    assert os.path.getmtime(os.path.join(root, "results.json")) == stamp  # resumed: nothing retrained
    bench_quality.cross_sets([bench], results, opts, root)
    assert "| tuned on mfeat |" in capsys.readouterr().out

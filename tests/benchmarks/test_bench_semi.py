"""bench_semi.py's per-seed path on a tiny project: every setting and a second round run end to end."""
from benchmarks import bench_semi
from tests.conftest import TINY_FEATURES
from toolkit.io import TRAIN_KEY, load_split, save_split


def test_every_setting_and_a_second_round_run_on_a_tiny_pool(tiny_project, tmp_path):
    p = tiny_project
    names, emos = p["names"], p["emos"]
    lst = tmp_path / "lst"
    lst.mkdir()
    info = lambda sl: {"names": names[sl], "emos": emos[sl], "vals": p["vals"][sl]}  # noqa: E731
    save_split(str(lst / "seed0.npy"), info(slice(30, 80)), info(slice(0, 30)))
    pool = names[80:]
    (tmp_path / "unlabeled.csv").write_text("name\n" + "\n".join(pool) + "\n")
    (tmp_path / "truth.csv").write_text("name,discrete\n" + "\n".join(f"{n},{e}" for n, e in zip(pool, emos[80:])) + "\n")
    (tmp_path / "vlm.csv").write_text("name,label\n" + "\n".join(f"{n},{e}" for n, e in zip(pool, emos[80:])) + "\n")  # a perfect VLM
    inputs = {"train_lst": str(lst), "feat": list(TINY_FEATURES), "vlm": str(tmp_path / "vlm.csv"),
              "unlabeled": str(tmp_path / "unlabeled.csv"), "truth": str(tmp_path / "truth.csv")}
    out = tmp_path / "bench"
    result = bench_semi.run_seed(inputs, 0, 2, str(out), ["--epochs", "3", "--cache_dir", str(tmp_path / "cache")])
    assert list(result["settings"]) == [label for label, _ in bench_semi.SETTINGS] + ["2 rounds (hard labels)"]
    assert all(0 <= f1 <= 1 for f1 in [result["stage1"], *result["settings"].values()])
    # a perfect VLM: every kept pseudo-label is right, in every round
    assert all(r["truth"]["pseudo_label_accuracy"] in (1.0, None) for r in result["pools"].values())
    # round 2 relabels with the stage-2 model and extends the labeled split, not the round-1 split
    assert result["pools"]["2 rounds (hard labels)"]["runs"] == [str(out / "seed0" / "stage2_pl0")]
    round2 = load_split(str(lst / "bench_semi_seed0_round2.npy"))[TRAIN_KEY]
    assert round2["pseudo"].count(False) == 50 and "probs" not in round2
    assert "probs" in load_split(str(lst / "bench_semi_seed0_pl1.npy"))[TRAIN_KEY]

import os

import pytest

from toolkit.errors import UserError
from toolkit.io import save_json
from toolkit.results import find_runs, summarize_runs, top_features

CLASSES = ["neutral", "angry", "happy", "sad", "worried", "surprise"]


def fake_run(root, feature, modality, seed, f1, classes=CLASSES, model="moe"):
    save_json(os.path.join(root, feature, f"seed{seed}", "summary.json"), {
        "features": [{"name": feature, "dim": 8, "modality": modality}], "model": model, "classes": classes,
        "acc": f1 + 0.01, "f1": f1, "best_epoch": 3 + seed, "seconds_per_epoch": 0.1, "seconds_total": 2.0})


def test_table_is_mean_and_std_per_feature_sorted_by_f1(tmp_path):
    for seed, (a, b) in enumerate([(0.5, 0.7), (0.6, 0.8)]):
        fake_run(tmp_path, "feat-a", "audio", seed, a)
        fake_run(tmp_path, "feat-b", "video", seed, b)
    os.makedirs(tmp_path / ".feat-c.tmp-1")  # a run still in progress is not read
    table = summarize_runs(find_runs([str(tmp_path)]))
    assert table["features"].tolist() == ["feat-b", "feat-a"]
    assert table.loc[0, "f1_mean"] == pytest.approx(0.75) and table.loc[0, "f1_std"] == pytest.approx(0.05)
    assert table.loc[0, "modality"] == "V" and table.loc[1, "runs"] == 2 and table.loc[1, "best_epoch"] == 3.5
    assert table["best_run"].tolist() == [str(tmp_path / "feat-b" / "seed1"), str(tmp_path / "feat-a" / "seed1")]
    assert table["best_f1"].tolist() == [0.8, 0.6] and not table["best_run_model"].any()  # fake runs hold no best.pth


def test_mixed_class_lists_and_empty_roots_are_refused(tmp_path):
    with pytest.raises(UserError, match="no finished runs"):
        find_runs([str(tmp_path)])
    fake_run(tmp_path, "feat-a", "audio", 0, 0.5)
    fake_run(tmp_path, "feat-b", "audio", 0, 0.5, classes=["pos", "neg"])
    with pytest.raises(UserError, match="2 different class lists"):
        summarize_runs(find_runs([str(tmp_path)]))


def test_top_features_per_modality(tmp_path):
    for name, modality, f1 in [("v1", "video", 0.6), ("v2", "video", 0.7), ("v3", "video", 0.5), ("a1", "audio", 0.4),
                               ("a2", "audio", 0.45), ("t1", "text", 0.3)]:
        fake_run(tmp_path, name, modality, 0, f1)
    csv = tmp_path / "table.csv"
    summarize_runs(find_runs([str(tmp_path)])).to_csv(csv, index=False)
    assert top_features(str(csv), 2, "AVT") == ["a2", "a1", "v2", "v1", "t1"]
    assert top_features(str(csv), 1, "V") == ["v2"]
    with pytest.raises(UserError, match="use letters"):
        top_features(str(csv), 1, "X")
    with pytest.raises(UserError, match="not found"):
        top_features(str(tmp_path / "nope.csv"), 1)


def test_top_features_leave_out_a_modality_without_rows_with_a_note(tmp_path, capsys):
    for name, modality, f1 in [("v1", "video", 0.6), ("v2", "video", 0.7), ("a1", "audio", 0.4)]:
        fake_run(tmp_path, name, modality, 0, f1)
    csv = tmp_path / "table.csv"
    summarize_runs(find_runs([str(tmp_path)])).to_csv(csv, index=False)
    assert top_features(str(csv), 2, "AVT") == ["a1", "v2", "v1"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"note: {csv} has no single-feature rows of modality T;")
    assert "--topn_modalities AV" in err
    assert top_features(str(csv), 1, "av") == ["a1", "v2"] and capsys.readouterr().err == ""
    with pytest.raises(UserError, match=r"no single-feature rows of modality T \(--topn_modalities T\); it holds 2 of "
                                        r"modality V, 1 of modality A: use --topn_modalities AV"):
        top_features(str(csv), 1, "T")

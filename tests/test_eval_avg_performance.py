import os
import subprocess
import sys

import pandas as pd

import eval_avg_performance
import train
from tests.conftest import REPO
from tests.toolkit.test_results import fake_run


def test_writes_csv_markdown_and_chart(tmp_path, capsys):
    for seed in range(3):
        fake_run(tmp_path, "feat-a", "audio", seed, 0.5 + seed / 100)
        fake_run(tmp_path, "feat-t", "text", seed, 0.6)
    eval_avg_performance.main(["--root", str(tmp_path)])
    out = capsys.readouterr().out
    assert "| 1 | feat-t | T |" in out and "0.5100 ± 0.0082" in out
    table = pd.read_csv(tmp_path / "unimodal_summary.csv")
    assert table["features"].tolist() == ["feat-t", "feat-a"]
    assert (tmp_path / "unimodal_summary.md").read_text().startswith("| rank |")
    assert (tmp_path / "unimodal_summary.png").read_bytes()[:4] == b"\x89PNG"


def test_no_runs_is_a_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, "eval_avg_performance.py", "--root", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no finished runs" in proc.stderr
    assert not os.listdir(tmp_path)


def test_feat_topn_picks_from_the_table_and_records_it(tiny_project, tmp_path):
    runs = tmp_path / "uni"
    for feature, modality, f1 in [("tiny-video-UTT", "video", 0.6), ("tiny-audio-UTT", "audio", 0.5), ("tiny-text-UTT", "text", 0.4)]:
        fake_run(runs, feature, modality, 0, f1)
    eval_avg_performance.main(["--root", str(runs)])
    args = train.parse_args(tiny_project["argv"] + ["--feat_topn", "1", "--topn_from", str(runs / "unimodal_summary.csv"),
                                                     "--topn_modalities", "VA", "--epochs", "1"])
    assert args.feat == ["tiny-video-UTT", "tiny-audio-UTT"]
    summary = train.run(args)
    assert [f["name"] for f in summary["features"]] == ["tiny-video-UTT", "tiny-audio-UTT"]
    assert summary["feat_topn"]["n"] == 1


def test_help_shows_every_default(capsys):
    import pytest

    from tests.toolkit.test_help import undocumented_defaults

    assert undocumented_defaults(eval_avg_performance.build_parser()) == []
    with pytest.raises(SystemExit):
        eval_avg_performance.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: ['saved/unimodal'])" in text and "(default <first root>/unimodal_summary)" in text

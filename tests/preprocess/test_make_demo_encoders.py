"""preprocess/make_demo_encoders.py: folders named by size (tiny-<kind>, base-<kind> with --base), loadable."""
import json

from preprocess import make_demo_encoders as script


def test_folders_are_named_by_the_size_they_hold(tmp_path, capsys):
    script.main(["--out", str(tmp_path), "--kinds", "bert", "--hidden", "16", "--layers", "1"])
    script.main(["--out", str(tmp_path), "--kinds", "bert", "--base"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base-bert", "tiny-bert"]
    assert json.load(open(tmp_path / "tiny-bert" / "config.json"))["hidden_size"] == 16
    base = json.load(open(tmp_path / "base-bert" / "config.json"))
    assert (base["hidden_size"], base["num_hidden_layers"]) == (768, 12)  # bert-base's architecture
    assert f"wrote {tmp_path / 'base-bert'}" in capsys.readouterr().out

"""Bad model hyper-parameters, on the command line or in models/hparams.yaml: one line, nothing written."""
import pytest

import models
import train
from tests.bad_inputs.helpers import assert_one_line_error, run_main, snapshot

BAD_FLAGS = [
    (["--model", "auto_attention", "--heads", "3"], ["--hidden_dim 128", "--heads 3"]),
    (["--frame_heads", "5"], ["--frame_dim 64", "--frame_heads 5"]),
    (["--model", "auto_attention", "--attn_layers", "0"], ["--attn_layers"]),
    (["--model", "auto_attention", "--fused_head", "true"], ["--fused_head"]),  # a flag of the other model
    (["--frame_input_dropout", "1"], ["--frame_input_dropout", "[0, 1)"]),
]


@pytest.mark.parametrize("flags,culprits", BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_bad_model_flags_are_one_line(tiny_project, tmp_path, capsys, flags, culprits):
    before = snapshot(tmp_path)
    code, _, err = run_main(train.main, tiny_project["argv"] + ["--epochs", "1"] + flags, capsys)
    assert_one_line_error(code, err, *culprits)
    assert snapshot(tmp_path) == before


BAD_TUNE = [
    ("moe:\n  hiden_dim: 32\n", ["hiden_dim", "did you mean 'hidden_dim'"]),
    ("moe:\n  dropout: 1.5\n", ["[moe]", "dropout", "1.5"]),
    ("moe:\n  hidden_dim: 32.5\n", ["hidden_dim", "whole number"]),
    ("moe:\n  fused_head: maybe\n", ["fused_head", "true or false"]),
    ("auto_attention:\n  heads: 3\n", ["[auto_attention]", "hidden_dim 128", "heads 3"]),
    ("moee:\n  hidden_dim: 32\n", ["unknown model 'moee'"]),
    ("moe:\n  - hidden_dim\n", ["section 'moe'"]),
    ("- moe\n", ["must map model names"]),
    ("moe: [\n", ["not valid YAML"]),
]


@pytest.mark.parametrize("text,culprits", BAD_TUNE, ids=[t.split("\n")[0] + "..." + t.split("\n")[1] for t, _ in BAD_TUNE])
def test_a_bad_hparams_yaml_is_one_line(tiny_project, tmp_path, capsys, monkeypatch, text, culprits):
    tune = tmp_path / "hparams.yaml"
    tune.write_text(text)
    monkeypatch.setattr(models, "HPARAMS_FILE", str(tune))
    monkeypatch.setattr(models, "OLD_HPARAMS_FILE", str(tmp_path / "model-tune.yaml"))
    before = snapshot(tmp_path)
    argv = tiny_project["argv"] + ["--epochs", "1"] + (["--model", "auto_attention"] if "auto_attention" in text else [])
    code, _, err = run_main(train.main, argv, capsys)
    assert_one_line_error(code, err, str(tune), *culprits)
    assert snapshot(tmp_path) == before

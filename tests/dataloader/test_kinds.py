"""The feature-kind registry: the two kinds that ship, the name rule, and a third kind added from outside the
package (here, in the test) that trains and predicts with no other edit."""
import os

import numpy as np
import pytest
import torch
import yaml

import train
from dataloader import KINDS, kinds
from dataloader.feature_store import load_features
from dataloader.kinds import UtteranceKind, kind_for_name
from dataloader.npyfile import load_npy
from models.base import TemporalExpert, UtteranceExpert
from tests.conftest import project_registry, write_project_config
from toolkit.errors import UserError
from toolkit.runs import ARGS_FILE, run_file


class StatsKind(UtteranceKind):
    """Frame files ``(T, C)`` kept as the utterance vector ``[mean over T, std over T]`` (2C,): the
    config entry's dim is 2C. Packing, cache, batches, standardisation and expert are the utterance kind's."""

    name = "stats"
    suffix = "-STATS"

    def file_dim(self, shape):
        return (2 * shape[1], None) if len(shape) == 2 and shape[0] > 0 else (None, f"shape {shape}, expected (T, C)")

    def read(self, path, spec):
        arr = load_npy(path)
        if arr.ndim != 2 or 2 * arr.shape[1] != spec.dim:
            raise UserError(f"{path} has shape {arr.shape}, expected (T, {spec.dim // 2}) for stats feature '{spec.name}'")
        return np.concatenate([arr.mean(axis=0), arr.std(axis=0)]).astype(np.float32)


@pytest.fixture
def stats_kind(monkeypatch):
    kind = StatsKind()
    monkeypatch.setitem(KINDS, kind.name, kind)  # register_kind(kind), undone after the test
    return kind


def test_shipped_kinds_and_the_name_rule():
    assert set(KINDS) >= {"utt", "frm"}
    assert kind_for_name("openface-au-frm") is KINDS["frm"] and kind_for_name("clip-UTT") is KINDS["utt"]
    assert KINDS["frm"].file_dim((7, 5)) == (5, None) and KINDS["utt"].file_dim((1, 5)) == (5, None)
    assert KINDS["frm"].file_dim((5,))[0] is None and KINDS["utt"].file_dim((3, 5))[0] is None
    with pytest.raises(ValueError, match="registered already"):
        kinds.register_kind(UtteranceKind())


def test_unknown_level_names_the_entry_and_the_kinds(tiny_project):
    folder = tiny_project["folders"]["tiny-video-UTT"][2]
    write_project_config(tiny_project, extra={"odd": ["video", [4, folder, "sequence"]]})
    with pytest.raises(UserError, match=r"config.py FEAT_VIDEO_DICT\['odd'\]: level 'sequence' must be one of utt, frm"):
        project_registry(tiny_project).lookup(["odd"])


def test_a_new_kind_reads_packs_caches_and_trains(frame_project, stats_kind, tmp_path, capsys):
    folder = frame_project["folders"]["tiny-au-FRM"][2]
    write_project_config(frame_project, extra={"au-STATS": ["video", [10, folder]]})  # the suffix picks the kind
    registry = project_registry(frame_project)
    spec = registry.lookup(["au-STATS"])[0]
    assert spec.level == "stats" and spec.kind is stats_kind and not spec.frame_level

    names = frame_project["names"]
    cache = str(tmp_path / "cache")
    arrays, rows = load_features([spec], names, cache)
    raw = np.load(os.path.join(folder, names[4] + ".npy"))
    np.testing.assert_allclose(arrays["au-STATS"][rows[4]], np.concatenate([raw.mean(0), raw.std(0)]), rtol=1e-6)
    assert [f for f in os.listdir(cache) if f.endswith(".npy")]  # cached as the utterance kind caches

    run_dir = tmp_path / "run"
    argv = frame_project["argv"][:-3] + ["--run_dir", str(run_dir), "--no_progress", "--feat", "['au-STATS', 'tiny-au-FRM']",
                                         "--epochs", "3", "--save_model"]
    train.main(argv)
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("BEST: epoch:")
    args = yaml.safe_load(open(run_file(run_dir, ARGS_FILE)))
    assert args["feat_levels"] == {"au-STATS": "stats", "tiny-au-FRM": "frm"}

    from inference.predictor import load_run, predict

    model, meta = load_run(str(run_dir), "cpu")
    assert isinstance(model.experts["au-STATS"], UtteranceExpert) and isinstance(model.experts["tiny-au-FRM"], TemporalExpert)
    assert model.experts["au-STATS"].norm.mean.abs().sum() > 0  # standardisation fitted over its rows
    out = predict(model, meta, names[:7], "cpu", registry, cache_dir=cache)
    assert out["probs"].shape == (7, 6) and np.allclose(out["probs"].sum(1), 1, atol=1e-5)
    assert torch.isfinite(torch.from_numpy(out["probs"])).all()

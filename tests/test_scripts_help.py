"""Every script's --help shows each flag's default (or that it is required), and the description is whole."""
import importlib
import os
import sys

import pytest

from tests.conftest import REPO
from tests.toolkit.test_help import undocumented_defaults
from toolkit import errors

SCRIPTS = ["train", "predict", "ensemble", "evaluate", "eval_avg_performance", "pseudo_label", "stages.sweep",
           "preprocess.check_feat_dim", "preprocess.make_demo_data", "preprocess.make_demo_clips", "preprocess.mer2025_base", "preprocess.parse_vlm_answers",
           "benchmarks.check_demo_data", "tune", "extract", "preprocess.make_demo_encoders", "describe", "select_features"]


class Captured(Exception):
    pass


@pytest.mark.parametrize("module", SCRIPTS)
def test_help_shows_every_default(module, monkeypatch):
    sys.path.insert(0, os.path.join(REPO, "preprocess"))
    script = importlib.import_module(module)
    parsers = []

    def capture(self, args=None, namespace=None):
        parsers.append(self)
        raise Captured

    monkeypatch.setattr(errors.ArgumentParser, "parse_known_args", capture)
    with pytest.raises(Captured):
        script.main(["--help"])
    parser = parsers[0]
    assert isinstance(parser, errors.ArgumentParser)
    assert undocumented_defaults(parser) == []

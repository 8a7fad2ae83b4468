"""The benchmarks register data sets in config at run time: restore config after each test."""
import pytest

import config
from benchmarks import datasets


@pytest.fixture
def restore_config():
    """config's class lists and feature dicts as they were before the test."""
    saved = {k: dict(getattr(config, k)) for k in ("EMO_RULE", *datasets.MODALITY_DICTS.values())}
    yield
    for k, v in saved.items():
        getattr(config, k).clear()
        getattr(config, k).update(v)

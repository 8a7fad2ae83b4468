"""CPU speed settings: malloc tuning is applied."""
import platform

import pytest

from toolkit.device import keep_freed_memory


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_malloc_thresholds_are_set_on_glibc():
    assert keep_freed_memory() is True

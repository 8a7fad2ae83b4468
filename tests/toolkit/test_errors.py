import os
import signal
import subprocess
import sys
import time

from tests.conftest import REPO

SCRIPT = """
import sys, time
sys.path.insert(0, {repo!r})
from toolkit.errors import cli
from toolkit.runs import staged_run_dir

@cli
def main():
    with staged_run_dir({run!r}) as stage:
        open(stage + "/started", "w").close()
        time.sleep(60)

main()
"""


def test_sigterm_removes_the_staging_folder_and_keeps_no_half_run(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT.format(repo=REPO, run=str(run))])
    deadline = time.time() + 30
    while not any(p.startswith(".run.tmp") for p in os.listdir(tmp_path)) and time.time() < deadline:
        time.sleep(0.05)
    stage = [p for p in os.listdir(tmp_path) if p.startswith(".run.tmp")][0]
    while not (tmp_path / stage / "started").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert os.listdir(tmp_path) == []

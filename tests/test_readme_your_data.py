"""The README's "your data" walkthrough, run exactly as written, in a fresh copy of the repository, on a
generated feature tree whose features the project has never seen (renamed demo features)."""
import os
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import REPO

RENAMED = {"demo-clip-UTT": "lab-clip-vit-UTT", "demo-hubert-UTT": "lab-hubert-base-UTT",
           "demo-roberta-UTT": "lab-roberta-wwm-UTT", "demo-internvl-UTT": "lab-internvl-UTT"}


def readme_block():
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    block = re.search(r"<!-- your-data:begin -->\n```bash\n(.*?)```\n<!-- your-data:end -->", text, re.S)
    assert block, "README lost its your-data block"
    return block.group(1)


def fresh_copy(dest):
    """The tracked files only, as a clone has them."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
        shutil.copy2(os.path.join(REPO, rel), os.path.join(dest, rel))


@pytest.mark.parametrize("text", [True, False], ids=["with-text", "without-text"])
def test_the_readme_walkthrough_runs_on_a_new_feature_tree(tmp_path, text):
    """``text`` False: a release with no text feature (no roberta folder; the block's '*roberta*=T' matches
    nothing and step 4's default --topn_modalities AVT fuses audio and video with a note)."""
    renamed = {old: new for old, new in RENAMED.items() if text or "roberta" not in old}
    repo, data = tmp_path / "repo", tmp_path / "mydata"
    fresh_copy(repo)
    python = os.path.dirname(sys.executable)
    subprocess.run([sys.executable, "preprocess/make_demo_data.py", "--out", str(data), "--n_labeled", "150",
                    "--n_unlabeled", "80", "--n_test", "60"], cwd=repo, check=True, capture_output=True)
    features = data / "features"
    for name in os.listdir(features):
        if name in renamed:
            os.rename(features / name, features / renamed[name])
        else:
            shutil.rmtree(features / name)  # fewer features: a shorter sweep
    env = {**os.environ, "PATH": python + os.pathsep + os.environ["PATH"], "DATA": str(data),
           "LABELS": str(data / "labels.csv"), "CANDIDATES": str(data / "test.csv"), "UNLABELED": str(data / "unlabeled.csv"),
           "VLM_ANSWERS": str(data / "vlm_answers"), "TRUTH": str(data / "test_labels.csv"),
           "SEEDS": "0 1", "EPOCHS": "15", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_block()], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "Traceback" not in proc.stderr
    table = pd.read_csv(repo / "saved" / "mine" / "unimodal" / "unimodal_summary.csv")
    assert set(table["features"]) == set(renamed.values())  # the sweep found exactly the new features
    assert set(table["modality"]) == set("AVT" if text else "AV")
    notes = [line for line in proc.stderr.splitlines() if "no single-feature rows of modality T" in line]
    assert len(notes) == (0 if text else 2)  # step 4: one note per seed
    submission = pd.read_csv(repo / "saved" / "mine" / "submission.csv")
    assert submission["name"].tolist() == pd.read_csv(data / "test.csv")["name"].tolist()
    f1 = float(re.findall(r"weighted F1\D*([0-9.]+)", out)[-1])
    assert f1 > 0.4  # six classes: chance is about 0.2
    assert os.path.exists(repo / "train_lst" / "seed0_pl.npy") and os.path.exists(repo / "saved" / "mine" / "seed0_pl" / "best.pth")

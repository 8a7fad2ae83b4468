"""What the demo benchmarks need before they run: the demo data and its seed splits (made when missing)."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "data", "demo")


def ensure_demo(seeds):
    """Make data/demo and train_lst/seed{N}.npy for ``seeds`` unless they exist."""
    sys.path.insert(0, REPO)
    import config

    if not os.path.exists(os.path.join(DEMO, "labels.csv")):
        subprocess.run([sys.executable, "preprocess/make_demo_data.py"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    for seed in seeds:
        if not os.path.exists(os.path.join(REPO, config.PATH_TO_TRAIN_LST, f"seed{seed}.npy")):
            subprocess.run([sys.executable, "preprocess/mer2025_base.py", "--label_csv", os.path.join(DEMO, "labels.csv"),
                            "--seed", str(seed)], cwd=REPO, check=True, stdout=subprocess.DEVNULL)

"""What the demo benchmarks need before they run: the demo data and its seed splits (made when missing)."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "data", "demo")


def ensure_demo(seeds, registry=None):
    """Make data/demo and <train_lst>/seed{N}.npy for ``seeds`` unless they exist (``registry``: the one whose
    train_lst the splits go to; default config.py's, which is where preprocess/mer2025_base.py writes them)."""
    sys.path.insert(0, REPO)
    from dataloader.registry import Registry
    from toolkit.io import resolve, split_path

    registry = registry or Registry.from_config()
    if not os.path.exists(os.path.join(DEMO, "labels.csv")):
        subprocess.run([sys.executable, "preprocess/make_demo_data.py"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    for seed in seeds:
        if not os.path.exists(split_path(registry.train_lst, f"seed{seed}")):
            subprocess.run([sys.executable, "preprocess/mer2025_base.py", "--label_csv", os.path.join(DEMO, "labels.csv"),
                            "--seed", str(seed), "--save_root", resolve(registry.train_lst)], cwd=REPO, check=True,
                           stdout=subprocess.DEVNULL)

"""Check that the synthetic data is a fair benchmark: feature strengths, fusion gain, nonlinearity, VLM answers.

    python preprocess/make_demo_data.py && python benchmarks/check_demo_data.py
    python benchmarks/check_demo_data.py --root data/mer

On an 80/20 stratified split of labels.csv it prints the weighted F1 of
  * a standardized logistic regression on each feature alone,
  * the same on all features concatenated (for a few C, so the linear baseline is not under-tuned),
  * an sklearn MLP (early stopping) on all features concatenated,
and, when <root>/vlm_answers exists, how often the simulated VLM answers are right.
"""
import json
import os
import re
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from toolkit.errors import ArgumentParser, UserError, cli  # noqa: E402
from toolkit.io import resolve  # noqa: E402
from toolkit.tables import MER_CLASSES  # noqa: E402

CLASSES = list(MER_CLASSES)
# Label spellings seen in VLM answers -> class (only for this check).
SYNONYMS = {"worry": "worried", "surprised": "surprise", "happiness": "happy", "sadness": "sad", "anger": "angry"}


def load_features(root, names, feats):
    out = {}
    for feat in feats:
        folder = os.path.join(root, "features", feat)
        out[feat] = np.stack([np.load(os.path.join(folder, n + ".npy")).reshape(-1) for n in names]).astype(np.float32)
    return out


def fit_score(clf, x_tr, y_tr, x_va, y_va):
    scaler = StandardScaler().fit(x_tr)
    clf.fit(scaler.transform(x_tr), y_tr)
    return f1_score(y_va, clf.predict(scaler.transform(x_va)), average="weighted")


def parse_vlm_label(text):
    """The answer's label mapped onto CLASSES, or None when the answer is unusable."""
    match = re.search(r"\{.*\}", text, flags=re.S)
    if not match:
        return None
    try:
        label = str(json.loads(match.group(0)).get("label", "")).strip().lower()
    except json.JSONDecodeError:
        return None
    label = SYNONYMS.get(label, label)
    return label if label in CLASSES else None


def check_vlm(root):
    folder = os.path.join(root, "vlm_answers")
    if not os.path.isdir(folder):
        return
    truth = pd.concat([pd.read_csv(os.path.join(root, f)) for f in ("labels.csv", "unlabeled_labels.csv", "test_labels.csv")])
    pred, true = [], []
    for name, emo in zip(truth["name"], truth["discrete"]):
        with open(os.path.join(folder, name + ".txt"), encoding="utf-8") as f:
            pred.append(parse_vlm_label(f.read()))
        true.append(emo)
    pred, true = np.array(pred, dtype=object), np.array(true)
    ok = pred != None  # noqa: E711 - elementwise on an object array
    print(f"\nVLM answers: {len(pred)} clips, unusable {np.sum(~ok)} ({np.mean(~ok):.1%})")
    print(f"  accuracy (usable) {np.mean(pred[ok] == true[ok]):.3f}, weighted F1 {f1_score(true[ok], pred[ok].astype(str), average='weighted'):.3f}")
    print("  predicted / true count per class: " + ", ".join(
        f"{c} {np.sum(pred[ok] == c) / max(1, np.sum(true[ok] == c)):.2f}" for c in CLASSES))


@cli
def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=None, help="dataset folder (None: data/demo in the repository)")
    parser.add_argument("--seed", type=int, default=0, help="split seed")
    parser.add_argument("--features", nargs="*", default=None, help="feature folders to use (None: all)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    root = args.root or os.path.relpath(resolve(os.path.join("data", "demo")))
    label_csv = os.path.join(root, "labels.csv")
    if not os.path.exists(label_csv):
        raise UserError(f"{label_csv} not found; run python preprocess/make_demo_data.py first")
    labels = pd.read_csv(label_csv)
    feats = args.features or sorted(os.listdir(os.path.join(root, "features")))
    start = time.time()
    x = load_features(root, labels["name"], feats)
    y = labels["discrete"].map(CLASSES.index).to_numpy()
    tr, va = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=args.seed)
    print(f"{root}: {len(tr)} train / {len(va)} valid clips, {len(feats)} features (loaded in {time.time() - start:.1f} s)")

    print("\nweighted F1, standardized LogisticRegression(C=0.1) per feature:")
    single = {}
    for feat in feats:
        single[feat] = fit_score(LogisticRegression(C=0.1, max_iter=2000), x[feat][tr], y[tr], x[feat][va], y[va])
        print(f"  {feat:<36} dim={x[feat].shape[1]:<5} F1 {single[feat]:.3f}")

    concat = np.concatenate([x[f] for f in feats], axis=1)
    print(f"\nall features concatenated (dim={concat.shape[1]}):")
    lr = {}
    for c in (0.01, 0.1, 1.0):
        lr[c] = fit_score(LogisticRegression(C=c, max_iter=2000), concat[tr], y[tr], concat[va], y[va])
        print(f"  LogisticRegression C={c:<5}          F1 {lr[c]:.3f}")
    mlp_model = MLPClassifier(hidden_layer_sizes=(256,), alpha=1e-2, early_stopping=True, max_iter=300, random_state=0)
    mlp = fit_score(mlp_model, concat[tr], y[tr], concat[va], y[va])
    print(f"  MLPClassifier(256, early stopping)    F1 {mlp:.3f}")
    majority = np.full(len(va), np.bincount(y[tr]).argmax())
    print(f"  (majority class: F1 {f1_score(y[va], majority, average='weighted'):.3f}, accuracy {accuracy_score(y[va], majority):.3f})")

    best_feat = max(single, key=single.get)
    print("\nchecks (targets for --scale demo):")
    checks = [
        (f"single-feature F1 spread {min(single.values()):.2f}..{max(single.values()):.2f} within 0.30..0.80",
         min(single.values()) >= 0.30 and max(single.values()) <= 0.80),
        (f"strongest single feature: {best_feat}", "internvl" in best_feat.lower()),
        (f"LR fusion {max(lr.values()):.3f} beats best single {single[best_feat]:.3f}", max(lr.values()) > single[best_feat] + 0.03),
        (f"MLP {mlp:.3f} beats the best LR on concat {max(lr.values()):.3f}", mlp > max(lr.values()) + 0.02),
    ]
    for text, ok in checks:
        print(f"  [{'ok' if ok else '!!'}] {text}")
    check_vlm(root)
    print(f"\ndone in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()

"""Choose the fused feature set by greedy forward selection on validation folds (see stages/selection.py).

    python preprocess/mer2025_base.py --label_csv labels.csv --folds 3 --stratify       # fold0..fold2.npy
    python select_features.py --folds 3 --from saved/unimodal/unimodal_summary.csv     # candidates: the sweep's features
    python train.py --config saved/select/selected.yaml --folds 3 --save_model         # train the selected set

Each step adds the feature that raises the fold-mean validation weighted F1 most; the selection stops when no
feature raises it by more than the spread of that gain over the folds. Flags after -- go to train.py for every candidate.
"""
from toolkit.errors import cli


@cli
def main(argv=None):
    from stages.selection import run

    return run(argv, __doc__)


if __name__ == "__main__":
    main()

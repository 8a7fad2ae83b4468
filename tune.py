"""Hyper-parameter search with Optuna: each trial trains K folds and scores their mean valid weighted F1.

    python preprocess/mer2025_base.py --label_csv labels.csv --folds 5                  # fold0..fold4.npy
    python tune.py --model moe --feat "['a','b']" --trials 50 --folds 5 --epochs 30
    python tune.py --model moe --trials 50 --jobs 4 -- --patience 10       # 4 workers; flags after -- go to train.py
    python train.py --config saved/tune/<study>/best.yaml                 # train the best settings on every fold

The searched values are the model config fields with a `search` space (models/hparams.py) plus lr, l2 and
batch_size (stages/search.py OPTIM_SPACE). The same command resumes the study. --out (saved/tune/<study>)
gets study.db (or study.journal), best.yaml, trials.csv, history.png and importance.png.
"""
from toolkit.errors import cli


@cli
def main(argv=None):
    from stages.search import run

    return run(argv, __doc__)


if __name__ == "__main__":
    main()

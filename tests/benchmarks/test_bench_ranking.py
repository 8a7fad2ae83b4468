"""bench_ranking.py: ranks with ties, Spearman, the reference's best learning rate and its agreement with itself."""
from benchmarks import bench_ranking
from benchmarks.datasets import BenchSet

FEATURES = {"a-UTT": ("audio", 4), "b-UTT": ("video", 4), "c-UTT": ("text", 4), "d-UTT": ("video", 4)}


def bench():
    return BenchSet("toy", "/nonexistent", "labels.csv", "MER", ["x", "y"], FEATURES)


def store(f1):
    """Reference runs whose F1 is ``f1(feature, seed, lr)``."""
    return {bench_ranking.run_key(bench(), feature, seed, lr): {"f1": f1(feature, seed, lr), "seconds": 1.0}
            for feature in FEATURES for seed in range(6) for lr in bench_ranking.REFERENCE_LRS}


def test_ties_share_the_mean_rank_and_spearman_compares_orders():
    assert bench_ranking.ranks({"a": 0.9, "b": 0.5, "c": 0.5}) == {"a": 1.0, "b": 2.5, "c": 2.5}
    assert bench_ranking.spearman({"a": 3, "b": 2, "c": 1}, {"a": 30, "b": 20, "c": 10, "z": 0}) == 1.0
    assert bench_ranking.spearman({"a": 3, "b": 2, "c": 1}, {"a": 1, "b": 2, "c": 3}) == -1.0


def test_the_reference_takes_each_features_best_learning_rate():
    best_lr = {"a-UTT": 1e-3, "b-UTT": 3e-3, "c-UTT": 1e-2, "d-UTT": 1e-2}
    runs = store(lambda feature, seed, lr: 0.5 + 0.1 * (lr == best_lr[feature]) + 0.01 * seed)
    scores = bench_ranking.reference_scores(bench(), [0, 1, 2], runs)
    assert {f: lr for f, (_, lr) in scores.items()} == best_lr
    assert all(abs(v - 0.61) < 1e-9 for v, _ in scores.values())


def test_the_reference_agrees_with_itself_only_where_its_halves_order_alike():
    order = {"a-UTT": 4, "b-UTT": 3, "c-UTT": 2, "d-UTT": 1}
    steady = store(lambda feature, seed, lr: 0.1 * order[feature])
    assert bench_ranking.self_agreement(bench(), [0, 1, 2, 3], steady) == 1.0
    flipping = store(lambda feature, seed, lr: 0.1 * (order[feature] if seed % 2 == 0 else 5 - order[feature]))
    assert bench_ranking.self_agreement(bench(), [0, 1, 2, 3], flipping) == -1.0
    assert bench_ranking.self_agreement(bench(), [0, 1, 2], steady) is None

"""The epoch hook's rules, on EpochEnd records alone (no training)."""
from engine import EarlyStopping, EpochEnd, Prune, Stop
from engine.callbacks import ask


def epoch_end(epoch, best_epoch):
    return EpochEnd(epoch, 1.0, 1.0, 0.5, 0.5, 0.1, best_epoch, 0.5)


def test_first_callback_that_ends_the_run_wins_and_is_named():
    seen = []

    def record(e):
        seen.append(e.epoch)

    class Enough:
        def on_epoch_end(self, e):
            return Stop("enough")

    signal, name = ask([record, Enough(), lambda e: Prune("never asked")], epoch_end(3, 3))
    assert seen == [3] and isinstance(signal, Stop) and not isinstance(signal, Prune)
    assert name == "Enough" and signal.reason == "enough"


def test_true_raised_signals_and_nothing():
    def prune(e):
        raise Prune("bad trial")

    assert ask([lambda e: None, lambda e: False], epoch_end(1, 1)) == (None, None)
    signal, name = ask([lambda e: True], epoch_end(1, 1))
    assert type(signal) is Stop and name == "<lambda>"
    signal, name = ask([prune], epoch_end(1, 1))
    assert isinstance(signal, Prune) and signal.kind == "pruned" and name == "prune" and signal.reason == "bad trial"


def test_early_stopping_counts_epochs_since_the_best():
    stop = EarlyStopping(3)
    assert stop(epoch_end(5, 3)) is None
    signal = stop(epoch_end(6, 3))
    assert isinstance(signal, Stop) and "3 epochs" in signal.reason


def test_epoch_end_row_is_the_metrics_csv_row():
    e = EpochEnd(4, 1.5, 1.25, 0.75, 0.7, 0.2, 4, 0.7)
    assert list(e.row()) == ["epoch", "train_loss", "valid_loss", "valid_acc", "valid_f1", "seconds"]
    assert e.row()["valid_loss"] == 1.25 and e.is_best and not epoch_end(5, 4).is_best

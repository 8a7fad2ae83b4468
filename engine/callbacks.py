"""The epoch hook: what a callback receives after each epoch and how it ends a run early.

A callback is an object with ``on_epoch_end(epoch_end)`` or a plain callable taking the same argument.
It ends the run by returning (or raising) a :class:`Stop` or :class:`Prune`; returning ``True`` is a
``Stop`` without a reason. The run keeps its best epoch so far either way; ``Prune`` marks a run a
search gave up on (``RunResult.pruned``)."""
import dataclasses


class Stop(Exception):
    """Ends a run after the current epoch; the best epoch so far is its result."""

    kind = "stopped"

    def __init__(self, reason=""):
        super().__init__(reason)
        self.reason = reason


class Prune(Stop):
    """Ends a run that is not worth finishing (e.g. a hyper-parameter search saw enough of it)."""

    kind = "pruned"


@dataclasses.dataclass(frozen=True)
class EpochEnd:
    """One finished epoch: its losses, validation metrics and the best epoch so far (by weighted F1)."""

    epoch: int
    train_loss: float
    valid_loss: float
    valid_acc: float
    valid_f1: float
    seconds: float
    best_epoch: int
    best_f1: float

    COLUMNS = ("epoch", "train_loss", "valid_loss", "valid_acc", "valid_f1", "seconds")  # metrics.csv

    @property
    def is_best(self):
        return self.best_epoch == self.epoch

    def row(self):
        return {key: getattr(self, key) for key in self.COLUMNS}


class EarlyStopping:
    """Stop after ``patience`` epochs without a better validation F1."""

    def __init__(self, patience):
        self.patience = patience

    def __call__(self, epoch_end):
        if epoch_end.epoch - epoch_end.best_epoch >= self.patience:
            return Stop(f"no better valid f-score for {self.patience} epochs")
        return None


def callback_name(callback):
    return getattr(callback, "__name__", None) or type(callback).__name__


def ask(callbacks, epoch_end):
    """(signal, callback name) of the first callback that ends the run, or (None, None)."""
    for callback in callbacks:
        hook = getattr(callback, "on_epoch_end", callback)
        try:
            answer = hook(epoch_end)
        except Stop as signal:
            answer = signal
        if answer is True:
            answer = Stop()
        if isinstance(answer, Stop):
            return answer, callback_name(callback)
    return None, None

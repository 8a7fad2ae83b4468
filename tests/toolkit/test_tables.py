"""toolkit/tables.py: one label policy for splits, truth CSVs, VLM CSVs and scoring."""
import numpy as np
import pytest

from toolkit.errors import UserError
from toolkit.io import TRAIN_KEY
from toolkit.tables import MER_CLASSES, canonical_label, check_unique, encode_labels

CLASSES = list(MER_CLASSES)


def test_letter_case_and_spaces_do_not_matter_anywhere():
    assert canonical_label(" Happy ", CLASSES) == "happy" and canonical_label("WORRIED", CLASSES) == "worried"
    assert canonical_label("joy", CLASSES) is None
    np.testing.assert_array_equal(encode_labels(["Happy", "neutral", " SAD"], CLASSES, "truth CSV t.csv"), [2, 0, 3])


def test_labels_outside_the_classes_name_the_count_values_and_first_sample():
    with pytest.raises(UserError, match=r"truth: 2 labels are not one of neutral, .* \(found 'joy', 'fear'; first sample 'b'\)"):
        encode_labels(["happy", "joy", "fear"], CLASSES, "truth", names=["a", "b", "c"])


def test_the_split_reader_and_the_scorer_agree_on_happy(tmp_path):
    from dataloader.batches import encode_labels as split_labels

    assert split_labels(["Happy"], CLASSES, "s.npy", TRAIN_KEY, ["a"]) == encode_labels(["Happy"], CLASSES, "t").tolist()


def test_repeated_names():
    check_unique(["a", "b"], "x")
    with pytest.raises(UserError, match=r"x: 1 sample names appear more than once \(first: a\)"):
        check_unique(["a", "b", "a"], "x")

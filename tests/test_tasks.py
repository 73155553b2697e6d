"""fastbp.datasets: what a data set's targets ask for (infer_task, prepare), a held-out
part that matches its training data (prepare(..., like=...)), split_rows, and load."""
import numpy as np
import pytest

from fastbp import datasets
from fastbp.datasets import infer_task, prepare, split_rows


def _X(n, d=3):
    return np.random.default_rng(0).normal(size=(n, d))


@pytest.mark.parametrize("y,task,why", [
    (np.arange(100) % 10, "classify", "10 distinct whole-number labels"),
    # more than 20 distinct whole numbers, but a label repeats on 20 rows or more
    (np.arange(1000) % 26, "classify", "26 distinct whole-number labels"),
    (np.arange(100) % 20, "classify", "20 distinct whole-number labels"),
    (np.arange(100) % 21, "regress", "21 distinct whole-number targets: too many for classes, "
                                     "more than 20 and more than 5% of the 100 rows"),
    (np.arange(442.0) % 214 + 25, "regress", "214 distinct whole-number targets"),
    (np.r_[np.zeros(9), 0.5], "regress", "targets with fractions"),
    (np.array(["cat", "dog", "cat"]), "classify", "2 class names"),
    (np.array([True, False, True]), "classify", "true/false targets: two classes"),
    (np.eye(3)[[0, 1, 2, 1]], "classify", "3 one-hot target columns"),
    (np.where(np.eye(3)[[0, 1, 2, 1]] == 1, 1, -1), "classify", "3 one-hot target columns"),
    (np.array([[-1], [1], [1]]), "classify", "one target column of two values"),
    (np.array([[0.2, 0.3], [0.1, 0.9]]), "regress", "2 target columns, not one class"),
])
def test_infer_task_auto(y, task, why):
    got, reason = infer_task(y)
    assert got == task and reason.startswith(why), reason


def test_infer_task_takes_a_given_task_and_refuses_others():
    assert infer_task(np.arange(100) % 10, "regress") == ("regress", "task='regress' as given")
    with pytest.raises(ValueError, match="task must be one of auto, classify, regress"):
        infer_task(np.zeros(3), "cluster")


def test_prepare_numbers_classes_and_shapes_targets():
    prepared = prepare(_X(6), np.array(["b", "a", "b", "c", "a", "c"]), name="t.csv")
    assert prepared.task == "classify" and prepared.classification
    assert prepared.y.tolist() == [1, 0, 1, 2, 0, 2] and prepared.n_outputs == 3
    assert prepared.classes.tolist() == ["a", "b", "c"] and prepared.name == "t.csv"
    y = np.arange(60.0) % 30 + 0.5
    regression = prepare(_X(60), y)
    assert regression.task == "regress" and regression.y.shape == (60, 1)
    assert regression.y.dtype == np.float64 and regression.n_outputs == 1
    assert regression.reason == "targets with fractions"


def test_held_out_part_is_prepared_like_its_training_data():
    train = prepare(_X(6), np.array(["b", "a", "b", "c", "a", "c"]), name="train.csv")
    test = prepare(_X(2), np.array(["c", "a"]), name="test.csv", like=train)
    assert test.y.tolist() == [2, 0] and test.n_outputs == 3 and test.task == "classify"
    with pytest.raises(ValueError, match=r"test.csv has classes \['d'\] that train.csv "
                                         "does not have"):
        prepare(_X(2), np.array(["d", "a"]), name="test.csv", like=train)
    with pytest.raises(ValueError, match="test.csv holds numbers where train.csv holds class"):
        prepare(_X(2), np.array([0, 1]), name="test.csv", like=train)
    with pytest.raises(ValueError, match="test.csv has 4 features; train.csv has 3"):
        prepare(_X(2, 4), np.array(["a", "b"]), name="test.csv", like=train)
    labels = prepare(_X(30), np.arange(30) % 3, name="a")
    with pytest.raises(ValueError, match="class label 5 of b is not a class of a"):
        prepare(_X(2), np.array([0, 5]), name="b", like=labels)
    # one class in the held-out part is fine; its task is the training data's
    assert prepare(_X(2), np.array([1, 1]), like=labels).n_outputs == 3
    regression = prepare(_X(60), np.arange(60.0) + 0.5, name="r")
    assert prepare(_X(2), np.array([1, 2]), like=regression).task == "regress"
    with pytest.raises(ValueError, match="s has 2 targets; r has 1"):
        prepare(_X(2), np.zeros((2, 2)), name="s", like=regression)


def test_split_rows_is_seeded_and_leaves_training_rows():
    train, test = split_rows(10, 0.2, seed=3)
    assert len(test) == 2 and sorted([*train, *test]) == list(range(10))
    assert [a.tolist() for a in split_rows(10, 0.2, seed=3)] == [train.tolist(), test.tolist()]
    with pytest.raises(ValueError, match="leaves no training samples of 2"):
        split_rows(2, 0.9)
    with pytest.raises(ValueError, match="test_fraction must be a number between 0 and 1"):
        split_rows(10, 1.0)


def test_load_reads_every_kind_and_names_what_it_cannot(tmp_path):
    X, y = datasets.load("digits")
    assert X.shape == (1797, 64) and y.shape == (1797,)
    np.savez(tmp_path / "d.npz", X=np.ones((3, 2)), Y=np.zeros((3, 1)))
    assert datasets.load(tmp_path / "d.npz")[1].shape == (3, 1)
    (tmp_path / "t.csv").write_text("a,b,label\n1,2,x\n3,4,y\n")
    assert datasets.load(str(tmp_path / "t.csv"), target="label")[1].tolist() == ["x", "y"]
    with pytest.raises(ValueError, match="no such file"):
        datasets.load(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="is a folder"):
        datasets.load(tmp_path)
    (tmp_path / "blob").write_bytes(b"\x00\x01" * 10)
    with pytest.raises(ValueError, match="is not an .npz, CSV or FANN training file, going by "
                                         "its content"):
        datasets.load(tmp_path / "blob")

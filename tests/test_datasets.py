"""fastbp.datasets: FANN and CSV readers and writers (round trips, real files, errors that
name the path and line)."""
import pathlib

import numpy as np
import pytest

from fastbp import datasets
from fastbp.datasets import load_csv, load_fann, save_fann

DATA = pathlib.Path(__file__).parent / "data"


def test_load_fann_reads_fanns_own_xor_file():
    X, Y = load_fann(DATA / "xor.data")
    np.testing.assert_array_equal(X, [[-1, -1], [-1, 1], [1, -1], [1, 1]])
    np.testing.assert_array_equal(Y, [[-1], [1], [1], [-1]])
    assert X.dtype == Y.dtype == np.float64


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fann_round_trip_is_exact(tmp_path, dtype):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(7, 3)).astype(dtype)
    Y = np.eye(3, dtype=dtype)[rng.integers(0, 3, 7)]
    save_fann(tmp_path / "s.train", X, Y)
    X2, Y2 = load_fann(tmp_path / "s.train", dtype=dtype)
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(Y2, Y)
    assert (tmp_path / "s.train").read_text().splitlines()[0] == "7 3 3"
    # 1-D targets are one output per sample
    save_fann(tmp_path / "r.data", X, np.arange(7))
    np.testing.assert_array_equal(load_fann(tmp_path / "r.data")[1], np.arange(7)[:, None])


def test_fann_line_breaks_between_values_do_not_matter(tmp_path):
    """FANN reads values with fscanf: only their count matters, as here."""
    (tmp_path / "f.train").write_text("2 2 1\n1 2 3\n\n4\n5\n6\n")
    X, Y = load_fann(tmp_path / "f.train")
    np.testing.assert_array_equal(X, [[1, 2], [4, 5]])
    np.testing.assert_array_equal(Y, [[3], [6]])


@pytest.mark.parametrize("text,message", [
    ("", "is empty"),
    ("2 2\n1 2\n3\n", "line 1: a FANN training file starts with three positive integers"),
    ("x 2 1\n", "line 1: .*three positive integers"),
    ("2 2 1\n1 2\n3\n4 five\n6\n", "line 4: 'five' is not a number"),
    ("2 2 1\n1 2\n3\n4 nan\n6\n", "line 4: 'nan' is not a finite number"),
    ("2 2 1\n1 2\n3\n4 5\n", "ends after 1 complete samples"),
    ("1 2 1\n1 2\n3\n4\n", "line 4: more values than the header's 1 samples"),
    ("1000000000 1000 1000\n1 2\n", "more values than the file holds"),
])
def test_fann_errors_name_the_path_and_line(tmp_path, text, message):
    path = tmp_path / "bad.train"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        load_fann(path)
    assert str(path) in str(info.value)


def test_binary_files_are_refused_as_text(tmp_path):
    path = tmp_path / "noise"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="not a text file"):
        load_fann(path)
    with pytest.raises(ValueError, match="not a text file"):
        load_csv(path)


def test_save_fann_refuses_what_it_cannot_write(tmp_path):
    with pytest.raises(ValueError, match="3 rows but Y has 2"):
        save_fann(tmp_path / "a", np.zeros((3, 2)), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="NaN"):
        save_fann(tmp_path / "a", np.full((2, 2), np.nan), np.zeros((2, 1)))


def test_csv_header_auto_and_target_by_name_or_index(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,label,c\n1,2,0,3\n4,5,1,6\n\n7,8,1,9\n")
    X, y = load_csv(path, target="label")
    np.testing.assert_array_equal(X, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    np.testing.assert_array_equal(y, [0, 1, 1])
    X, y = load_csv(path)  # default: the last column
    np.testing.assert_array_equal(y, [3, 6, 9])
    np.testing.assert_array_equal(load_csv(path, target=0)[1], [1, 4, 7])
    plain = tmp_path / "p.csv"
    plain.write_text("1,2,0\n4,5,1\n")
    X, y = load_csv(plain)
    np.testing.assert_array_equal(X, [[1, 2], [4, 5]])
    with pytest.raises(ValueError, match="has no header row"):
        load_csv(plain, target="label")


def test_csv_class_names_and_round_trip(tmp_path):
    path = tmp_path / "iris.csv"
    path.write_text('x1,x2,species\n0.5,1e-3,setosa\n-2,3,"virginica"\n')
    X, y = load_csv(path, dtype="float32")
    assert X.dtype == np.float32 and list(y) == ["setosa", "virginica"]
    rng = np.random.default_rng(1)
    data = rng.normal(size=(5, 4))
    np.savetxt(tmp_path / "r.csv", data, delimiter=",", fmt="%.17g", header="a,b,c,d",
               comments="")
    X, y = load_csv(tmp_path / "r.csv", target="b")
    np.testing.assert_array_equal(X, data[:, [0, 2, 3]])
    np.testing.assert_array_equal(y, data[:, 1])


@pytest.mark.parametrize("text,kwargs,message", [
    ("a,b\n1,2\n3\n", {}, "line 3: 1 fields where the header has 2"),
    ("1,2,0\n3,x,1\n", {}, "line 2: 'x' is not a number"),
    ("a,b\n", {}, "header row and no data"),
    ("\n\n", {}, "holds no rows"),
    ("a,b\n1,2\n", {"target": "z"}, "has no column 'z'"),
    ("a,b\n1,2\n", {"target": 5}, "target must be"),
    ("a\n1\n", {}, "one column"),
])
def test_csv_errors_name_the_path_and_line(tmp_path, text, kwargs, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        load_csv(path, **kwargs)
    assert str(path) in str(info.value)


def test_sniff_by_suffix_then_content(tmp_path):
    (tmp_path / "a").write_text("2 1 1\n1\n2\n3\n4\n")
    (tmp_path / "b").write_text("x,y\n1,2\n")
    np.savez(tmp_path / "c", X=np.zeros((2, 2)), y=np.zeros(2))
    (tmp_path / "c.npz").rename(tmp_path / "c")
    assert datasets.sniff(tmp_path / "a") == ("fann", False)
    assert datasets.sniff(tmp_path / "b") == ("csv", False)
    assert datasets.sniff(tmp_path / "c") == ("npz", False)
    assert datasets.sniff(DATA / "xor.data") == ("fann", True)

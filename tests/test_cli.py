"""fastbp train: data files, checks before training (one line, exit code 2), threads,
progress, early stopping, and sweeps. In-process main() calls on tiny data."""
import math
import pathlib
import re

import numpy as np
import pytest

import fastbp
from fastbp import cli
from fastbp.cli import main
from fastbp.datasets import save_fann

DATA = pathlib.Path(__file__).parent / "data"
FAST = ["--epochs", "2", "--hidden", "4", "--quiet"]


def _blobs(n=60, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    X = rng.normal(size=(n, d)) * 0.3 + np.eye(k, d)[y] * 2
    return X.astype(np.float32), y


@pytest.fixture
def npz(tmp_path):
    def make(name="d.npz", **arrays):
        path = tmp_path / name
        np.savez(path, **arrays)
        return str(path)
    return make


def _error(capsys):
    """The one stderr line of a refused run."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("fastbp: error: ")
    assert "epoch" not in captured.out  # refused before training
    return lines[0]


# -- data the command line refuses (issue 13.4, 13.11) -------------------------------------

@pytest.mark.parametrize("X,y,message", [
    (np.zeros((10, 3)), np.zeros(30), "10 rows of X but 30 of y"),
    (np.zeros((30, 3)), np.zeros(10), "30 rows of X but 10 of y"),
    (np.zeros(30), np.zeros(30), "X of .* must be 2-D"),
    (np.zeros((30, 3)), np.r_[np.zeros(29), 1e9], "class label 1e\\+09 .* out of range"),
    (np.zeros((30, 3)), np.r_[np.zeros(29), -1], "labels .* must be 0..K-1"),
    (np.r_[np.zeros((29, 3)), [[np.nan, 0, 0]]], np.arange(30) % 2,
     "NaN or infinite values \\(first in row 29\\)"),
    (np.zeros((30, 3)), np.zeros(30), "one class only"),
    (np.zeros((30, 3)), np.zeros((30, 2, 2)), "y of .* must be 1-D labels or a 2-D"),
])
def test_misaligned_or_bad_data_is_one_line_and_exit_2(npz, capsys, X, y, message):
    assert main(["--data", npz(X=X, y=y), *FAST]) == 2
    assert re.search(message, _error(capsys))


def test_huge_label_allocates_nothing(npz, capsys):
    import tracemalloc
    path = npz(X=np.zeros((30, 3)), y=np.r_[np.zeros(29, np.int64), 10 ** 9])
    tracemalloc.start()
    try:
        assert main(["--data", path, *FAST]) == 2
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50e6
    assert "out of range" in _error(capsys)


@pytest.mark.parametrize("fraction", ["-1", "0", "1", "1.5", "nan", "inf"])
def test_test_fraction_must_be_between_0_and_1(capsys, fraction):
    assert main(["--test-fraction", fraction, *FAST]) == 2
    assert "--test-fraction must be a number between 0 and 1" in _error(capsys)


def test_save_into_a_missing_folder_fails_before_training(tmp_path, capsys):
    target = tmp_path / "no" / "such" / "net.npz"
    assert main(["--save", str(target), *FAST]) == 2
    assert "does not exist" in _error(capsys)
    assert main(["--save", str(tmp_path), *FAST]) == 2
    assert "is a folder" in _error(capsys)


@pytest.mark.parametrize("name", ["noise", "noise.npz", "noise.csv", "noise.train"])
def test_random_bytes_as_data_are_one_clear_line(tmp_path, capsys, name):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).bytes(3000))
    assert main(["--data", str(path), *FAST]) == 2
    line = _error(capsys)
    assert "pickle" not in line and str(path) in line
    assert ("not an .npz" in line or "not a text file" in line
            or "not a UTF-8 text file" in line)


def test_npz_with_objects_or_wrong_arrays(npz, capsys):
    path = npz(X=np.array([{"a": 1}] * 3, dtype=object), y=np.zeros(3))
    assert main(["--data", path, *FAST]) == 2
    assert "Python objects" in _error(capsys)
    assert main(["--data", npz(Z=np.zeros(3)), *FAST]) == 2
    assert "must hold arrays 'X' and 'y'" in _error(capsys)


# -- data files: CSV and FANN (issue 14) -----------------------------------------------------

def test_csv_with_class_names_trains(tmp_path, capsys):
    X, y = _blobs()
    names = np.array(["cat", "dog", "emu"])[y]
    path = tmp_path / "animals.csv"
    path.write_text("a,b,c,d,kind\n" + "".join(
        ",".join(f"{v:.6f}" for v in row) + f",{name}\n" for row, name in zip(X, names)))
    assert main(["--data", str(path), *FAST]) == 0
    out = capsys.readouterr().out
    assert "classes: 0=cat, 1=dog, 2=emu" in out and "held-out accuracy" in out
    assert main(["--data", str(path), "--target", "a", *FAST]) == 2  # 'a' is a float column
    assert "held-out" not in capsys.readouterr().out


@pytest.mark.parametrize("low", [0, -1])
def test_fann_one_hot_outputs_are_classes(tmp_path, capsys, low):
    X, y = _blobs()
    Y = np.where(np.eye(3)[y] == 1, 1, low)
    save_fann(tmp_path / "b.train", X, Y)
    save_fann(tmp_path / "b.test", X[:9], Y[:9])
    args = ["--data", str(tmp_path / "b.train"), *FAST]
    assert main([*args, "--test-data", str(tmp_path / "b.test")]) == 0
    out = capsys.readouterr().out
    assert "softmax" in out and "60 training and 9 held-out" in out
    assert "held-out accuracy" in out
    assert main([*args, "--task", "regress"]) == 0
    out = capsys.readouterr().out
    assert "identity" in out and "held-out loss" in out


def test_fann_xor_and_task_choices(tmp_path, capsys):
    X = np.tile([[-1, -1], [-1, 1], [1, -1], [1, 1]], (5, 1))
    save_fann(tmp_path / "x.data", X, np.tile([[-1], [1], [1], [-1]], (5, 1)))
    assert main(["--data", str(tmp_path / "x.data"), *FAST]) == 0
    assert "[2, 4, 2]" in capsys.readouterr().out  # one -1/1 output: two classes
    save_fann(tmp_path / "r.data", X, X * 0.3)  # not one class per row
    assert main(["--data", str(tmp_path / "r.data"), *FAST, "--task", "classify"]) == 2
    assert "not one class per row" in _error(capsys)
    assert main(["--data", str(DATA / "xor.data"), *FAST]) == 0


def test_malformed_fann_names_line(tmp_path, capsys):
    (tmp_path / "bad.train").write_text("2 2 1\n1 2\n1\n3 oops\n0\n")
    assert main(["--data", str(tmp_path / "bad.train"), *FAST]) == 2
    assert "line 4: 'oops' is not a number" in _error(capsys)


def test_task_regress_on_labels(npz, capsys):
    X, y = _blobs()
    assert main(["--data", npz(X=X, y=y), *FAST, "--task", "regress"]) == 0
    assert "held-out loss" in capsys.readouterr().out
    assert main(["--data", npz(X=X, y=y + 0.5), *FAST, "--task", "classify"]) == 2
    assert "whole-number class labels" in _error(capsys)


# -- output: epochs from 1, threads, progress, early stopping, rate --------------------------

def test_one_epoch_reports_a_rate_without_compilation(npz, capsys):
    X, y = _blobs()
    assert main(["--data", npz(X=X, y=y), "--epochs", "1", "--hidden", "4",
                 "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "threads=1" in out and "epoch    1" in out and "epoch    0" not in out
    assert "samples/s (kernels compiled or loaded from cache beforehand" in out
    assert main(["--threads", "0", *FAST]) == 2
    assert "--threads must be a positive integer" in _error(capsys)


def test_progress_lines_go_through_tqdm_write(npz, capsys, monkeypatch):
    from tqdm.auto import tqdm
    written = []
    monkeypatch.setattr(tqdm, "write", classmethod(lambda cls, s, *a, **k: written.append(s)))
    X, y = _blobs()
    assert main(["--data", npz(X=X, y=y), "--epochs", "3", "--hidden", "4",
                 "--progress"]) == 0
    assert [w.split()[:2] for w in written] == [["epoch", "1"], ["epoch", "2"], ["epoch", "3"]]
    assert "epoch    1" not in capsys.readouterr().out


def test_early_stopping_is_announced_with_its_epochs(npz, capsys):
    X, y = _blobs(n=40)
    y = np.random.default_rng(1).integers(0, 3, 40)  # noise: the held-out loss soon rises
    assert main(["--data", npz(X=X, y=y), "--epochs", "300", "--hidden", "16",
                 "--patience", "2", "--lr", "0.3"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("stopped early"))
    stopped = int(line.split("after epoch ")[1].split(":")[0])
    best = int(line.split("best epoch, ")[1].split()[0])
    assert stopped == best + 2 and best >= 1
    assert f"epoch {stopped:4d}" in out and f"epoch {stopped + 1:4d}" not in out


# -- sweeps (issue 10) ------------------------------------------------------------------------

def test_parse_sweep():
    assert cli.parse_sweep("learning_rate=0.01,0.1 seed=0,1,2 nesterov=true,false") == {
        "learning_rate": [0.01, 0.1], "seed": [0, 1, 2], "nesterov": [True, False]}
    assert cli.parse_sweep("lr-schedule=step:every=2,gamma=0.5,constant") == {
        "lr_schedule": ["step:every=2,gamma=0.5", "constant"]}
    assert cli.parse_sweep("activation=tanh,relu") == {"activation": ["tanh", "relu"]}


@pytest.mark.parametrize("spec,message", [
    ("", "--sweep is empty"),
    ("learning_rate", "is not KEY=V1,V2"),
    ("colour=1,2", "'colour' is not a keyword of Network or Trainer"),
    ("seed=1 seed=2", "given twice"),
    ("seed=1,,2", "empty value"),
    ("learning_rate=0.1,-1", "learning_rate must be"),
    ("layer_sizes=3", "not a keyword"),
])
def test_bad_sweeps_are_refused_before_training(capsys, spec, message):
    assert main(["--sweep", spec, *FAST]) == 2
    assert message in _error(capsys)


def test_sweep_prints_a_table_and_saves_the_best(npz, tmp_path, capsys):
    X, y = _blobs()
    path = tmp_path / "best.npz"
    assert main(["--data", npz(X=X, y=y), "--epochs", "3", "--hidden", "4",
                 "--sweep", "learning_rate=0.03,0.3 seed=0,1", "--save", str(path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    head = next(i for i, l in enumerate(lines) if "learning_rate" in l and "seed" in l
                and "accuracy" in l)
    rows = lines[head + 1:head + 5]
    assert [r.replace("*", " ").split()[0] for r in rows] == ["0", "1", "2", "3"]
    assert sum(r.lstrip().startswith("*") for r in rows) == 1
    best = int(next(l for l in lines if l.startswith("best (*)")).split("model ")[1][0])
    assert rows[best].lstrip().startswith("*")
    # the saved network is the best model, as a single run with its settings ends
    lr, seed = [(0.03, 0), (0.03, 1), (0.3, 0), (0.3, 1)][best]
    from fastbp.cli import _split
    train_rows, test_rows = _split(60, 0.2, 0)
    net = fastbp.Network([4, 4, 3], activations=["tanh", "softmax"], loss="cross_entropy",
                         seed=seed)
    fastbp.Trainer(net, batch_size=16, learning_rate=lr, momentum=0.9, seed=seed).fit(
        X[train_rows], y[train_rows], epochs=3)
    np.testing.assert_array_equal(fastbp.Network.load(path).params, net.params)
    assert math.isfinite(float(rows[best].split()[-1]))


def test_sweep_over_the_hidden_activation(npz, capsys):
    X, y = _blobs()
    assert main(["--data", npz(X=X, y=y), *FAST, "--sweep", "activation=tanh,relu"]) == 0
    out = capsys.readouterr().out
    assert "relu" in out and "best (*): model" in out


def test_divergence_names_the_epoch_from_1(npz, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3)) * 10
    assert main(["--data", npz(X=X, y=X @ [3.0, -2.0, 1.0] + 0.5), "--hidden", "8",
                 "--epochs", "50", "--lr", "10", "--momentum", "0.9"]) == 2
    line = _error_after_training(capsys)
    epoch = int(line.split("error: epoch ")[1].split(":")[0])
    assert epoch >= 1 and "epoch 0" not in line and "diverged" in line
    assert line.endswith("(--lr 10.0)")


def _error_after_training(capsys):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastbp: error: "), captured.err
    return lines[0]


def test_sweep_marks_diverged_models_and_goes_on(npz, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3)) * 10
    assert main(["--data", npz(X=X, y=X @ [3.0, -2.0, 1.0]), "--hidden", "8", "--epochs", "5",
                 "--sweep", "learning_rate=0.0001,10", "--momentum", "0.9"]) == 0
    out = capsys.readouterr().out
    rows = [l for l in out.splitlines() if l.replace("*", " ").split()[:1] in (["0"], ["1"])]
    assert "diverged" in rows[1] and "diverged" not in rows[0]
    assert rows[0].startswith("*") and "accuracy" not in out


def test_sweep_over_hidden_layer_sizes(npz, capsys):
    X, y = _blobs()
    assert main(["--data", npz(X=X, y=y), *FAST, "--sweep", "hidden=3x2,5x4 seed=0,1"]) == 0
    out = capsys.readouterr().out
    assert "sweep of 4 networks 4-(hidden)-3" in out and "5x4" in out
    assert main(["--sweep", "hidden=3,5x4", *FAST]) == 2
    assert "same number of layers" in _error(capsys)
    assert main(["--sweep", "hidden=3,0", *FAST]) == 2
    assert "layer sizes such as 64 or 64x32" in _error(capsys)

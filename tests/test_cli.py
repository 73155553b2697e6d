"""fastbp train: data files, checks before training (one line, exit code 2), threads,
progress, early stopping, sweeps, scaling and task inference on raw data, --help and
--version. In-process main() calls on tiny data."""
import math
import pathlib
import re

import numpy as np
import pytest

import fastbp
from fastbp import cli, datasets
from fastbp.cli import main
from fastbp.datasets import save_fann
from fastbp.preprocessing import InputScaling
from fastbp.grid import parse_grid

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

def test_parse_grid():
    assert parse_grid("learning_rate=0.01,0.1 seed=0,1,2 nesterov=true,false") == {
        "learning_rate": [0.01, 0.1], "seed": [0, 1, 2], "nesterov": [True, False]}
    assert parse_grid("lr-schedule=step:every=2,gamma=0.5,constant") == {
        "lr_schedule": ["step:every=2,gamma=0.5", "constant"]}
    assert parse_grid("activation=tanh,relu") == {"activation": ["tanh", "relu"]}


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
    # the saved network is the best model, as a single run with its settings ends: the
    # inputs standardized with the training part's statistics (the default since issue 22)
    lr, seed = [(0.03, 0), (0.03, 1), (0.3, 0), (0.3, 1)][best]
    train_rows, test_rows = datasets.split_rows(60, 0.2, 0)
    net = fastbp.Network([4, 4, 3], activations=["tanh", "softmax"], loss="cross_entropy",
                         seed=seed).fit_input_scaling(X[train_rows])
    fastbp.Trainer(net, batch_size=16, learning_rate=lr, momentum=0.9, seed=seed).fit(
        X[train_rows], y[train_rows], epochs=3)
    saved = fastbp.Network.load(path)
    np.testing.assert_array_equal(saved.params, net.params)
    assert saved.input_scaling == net.input_scaling
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
    # --no-scale: raw targets of this size overflow within 5 epochs at lr 10; standardized
    # ones (the default since issue 22) grow more slowly
    assert main(["--data", npz(X=X, y=X @ [3.0, -2.0, 1.0]), "--hidden", "8", "--epochs", "5",
                 "--sweep", "learning_rate=0.0001,10", "--momentum", "0.9", "--no-scale"]) == 0
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


# -- runs that train and save (moved from test_trainer.py) ------------------------------------

def test_cli_trains_on_digits(tmp_path, capsys):
    path = tmp_path / "digits.npz"
    code = main(["train", "--epochs", "3", "--hidden", "16", "--save", str(path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "epoch    3" in out and "held-out accuracy" in out and "samples/s" in out
    accuracy = float(out.split("held-out accuracy:")[1].split()[0])
    assert accuracy > 0.8
    assert fastbp.Network.load(path).layer_sizes == [64, 16, 10]


def test_cli_optimizer_and_schedule(tmp_path, capsys):
    path = tmp_path / "t.npz"
    code = main(["--epochs", "2", "--hidden", "8", "--optimizer", "adam", "--lr", "0.01",
                 "--lr-schedule", "invscaling:decay=0.5", "--quiet", "--save", str(path)])
    out = capsys.readouterr().out
    assert code == 0 and "adam" in out and "InverseScaling(decay=0.5" in out
    resumed = fastbp.Trainer.load(path)
    assert resumed.optimizer == "adam" and resumed.epoch == 2


def test_cli_regression_data(tmp_path, capsys):
    rng = np.random.default_rng(13)
    X = rng.normal(size=(200, 3))
    np.savez(tmp_path / "reg.npz", X=X, y=np.sin(X[:, 0]) + 0.5 * X[:, 1])
    assert main(["--data", str(tmp_path / "reg.npz"), "--epochs", "5", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "identity" in out and "held-out loss" in out


def test_cli_reports_bad_options(capsys, tmp_path):
    assert main(["--learning-rate", "-1", "--epochs", "1"]) == 2
    assert "learning_rate must be" in capsys.readouterr().err
    assert main(["--data", str(tmp_path / "missing.npz")]) == 2
    assert "missing.npz" in capsys.readouterr().err
    np.savez(tmp_path / "bad.npz", X=np.zeros((4, 3)))
    assert main(["--data", str(tmp_path / "bad.npz")]) == 2
    assert "must hold arrays 'X' and 'y'" in capsys.readouterr().err


# -- raw real data: scaling and the task by default (issue 22) ------------------------------

def _sklearn_csv(tmp_path, name, **kwargs):
    """A scikit-learn data set as a CSV of its raw values, target column "label"; (path,
    X, y) as datasets.load reads them."""
    sk = pytest.importorskip("sklearn.datasets")
    bunch = getattr(sk, f"load_{name}")(**kwargs)
    path = tmp_path / f"{name}.csv"
    header = ",".join([f"x{i}" for i in range(bunch.data.shape[1])] + ["label"])
    np.savetxt(path, np.c_[bunch.data, bunch.target], delimiter=",", fmt="%.17g",
               header=header, comments="")
    return (str(path), *datasets.load(str(path), target="label"))


def _held_out(out, what):
    return float(re.search(rf"{what}:? (\S+?)[,;\s]", out + " ").group(1))


def test_raw_breast_cancer_trains_well_and_the_saved_model_predicts_from_raw_data(
        tmp_path, capsys):
    path, X, y = _sklearn_csv(tmp_path, "breast_cancer")
    saved = tmp_path / "bc.npz"
    assert main(["--data", path, "--target", "label", "--quiet", "--save", str(saved)]) == 0
    out = capsys.readouterr().out
    accuracy = _held_out(out, "held-out accuracy")
    assert accuracy > 0.9, out  # 0.667 on the raw features, before inputs were scaled
    assert "scaling: inputs standardized" in out
    train_rows, test_rows = datasets.split_rows(len(X), 0.2, 0)
    X_train, X_test = X[train_rows], X[test_rows]
    model = fastbp.Network.load(saved)
    assert model.input_scaling == InputScaling.fit(X_train)
    assert round(model.score(X_test, y[test_rows]), 4) == accuracy  # raw data in
    # the same training in-process, through the API: the same predictions from raw data
    net = fastbp.Network([30, 64, 2], activations=["tanh", "softmax"],
                         loss="cross_entropy", seed=0).fit_input_scaling(X_train)
    fastbp.Trainer(net, batch_size=16, learning_rate=0.1, momentum=0.9, seed=0).fit(
        X_train, y[train_rows].astype(int), epochs=30)
    np.testing.assert_array_equal(model.forward(X_test), net.forward(X_test))
    np.testing.assert_array_equal(model.predict(X), net.predict(X))


def test_whole_number_regression_target_is_regression_with_r2_and_rmse(tmp_path, capsys):
    path, X, y = _sklearn_csv(tmp_path, "diabetes", scaled=False)
    saved = tmp_path / "diabetes.npz"
    assert main(["--data", path, "--target", "label", "--quiet", "--save", str(saved)]) == 0
    out = capsys.readouterr().out
    assert ("task: regression (214 distinct whole-number targets: too many for classes, "
            "more than 20 and more than 5% of the 442 rows; --task classify to override)"
            in out), out
    assert "identity" in out and "held-out loss" in out
    r2, rmse = _held_out(out, "R\\^2"), _held_out(out, "RMSE")
    assert 0.2 < r2 < 1 and rmse < y.std()
    # the saved network predicts in the targets' units, from raw inputs
    test_rows = datasets.split_rows(len(X), 0.2, 0)[1]
    model = fastbp.Network.load(saved)
    assert round(model.score(X[test_rows], y[test_rows]), 4) == r2
    error = model.forward(X[test_rows])[:, 0] - y[test_rows]
    assert float(f"{np.sqrt(np.mean(error.astype(np.float64) ** 2)):.4g}") == rmse


def test_labels_are_classes_and_the_banner_says_why(tmp_path, capsys):
    path, _, _ = _sklearn_csv(tmp_path, "iris")
    assert main(["--data", path, *FAST]) == 0
    out = capsys.readouterr().out
    assert ("task: classification (3 distinct whole-number labels; --task regress to "
            "override)") in out and "held-out accuracy" in out
    assert main(FAST) == 0  # the bundled digits
    out = capsys.readouterr().out
    assert "task: classification (10 distinct whole-number labels" in out
    assert main([*FAST, "--task", "classify"]) == 0
    assert "task: classification (--task classify)" in capsys.readouterr().out


def test_no_scale_trains_on_the_data_as_given(npz, tmp_path, capsys):
    X, y = _blobs()
    saved = tmp_path / "raw.npz"
    assert main(["--data", npz(X=X, y=y), *FAST, "--no-scale", "--save", str(saved)]) == 0
    assert "scaling: none (--no-scale)" in capsys.readouterr().out
    assert fastbp.Network.load(saved).input_scaling is None
    assert main(["--data", npz(X=X, y=y), *FAST, "--save", str(saved)]) == 0
    assert fastbp.Network.load(saved).input_scaling is not None


# -- what the command line says: threads, warnings, --help, --version (issue 22) ------------

def test_the_banner_says_what_threads_auto_does(npz, capsys):
    X, y = _blobs()
    assert main(["--data", npz(X=X, y=y), *FAST]) == 0
    out = capsys.readouterr().out
    assert "threads=all" not in out
    assert f"threads=auto ({cli.AUTO_THREADS})" in out
    assert main(["--data", npz(X=X, y=y), *FAST, "--sweep", "seed=0,1"]) == 0
    out = capsys.readouterr().out
    assert "threads=all" not in out and f"threads=auto ({cli.AUTO_THREADS_SWEEP}: " in out


def test_a_warning_is_one_line_without_python_source(npz, capsys):
    rng = np.random.default_rng(0)  # raw inputs far from 0: tanh units saturate
    X = np.array([14, 19, 92, 654, 880, 2000.0]) * (1 + 0.25 * rng.normal(size=(200, 6)))
    y = (rng.random(200) < 0.63).astype(int)
    assert main(["--data", npz(X=X, y=y), "--epochs", "5", "--quiet", "--no-scale"]) == 0
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("fastbp: warning: the training loss stayed at ")
    assert "warnings.warn" not in err and ".py" not in err
    assert main(["--data", npz(X=X, y=y), "--epochs", "5", "--quiet"]) == 0
    assert capsys.readouterr().err == ""  # standardized, they train


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    # one block per option: "  --name ..." and its help, up to the next option
    blocks = re.split(r"\n(?=  -)", text.split("options:", 1)[1].strip("\n"))
    flags = {"-h", "--no-scale", "--progress", "--quiet"}
    options = [b for b in blocks if b.split()[0].rstrip(",") not in flags]
    assert len(options) == 24
    missing = [b.split()[0] for b in options if "(default: " not in " ".join(b.split())]
    assert not missing, missing
    flat = " ".join(text.split())
    assert "(default: auto: one thread unless a batch is large enough" in flat
    assert "(default: 30)" in text and "(default: digits)" in text


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"fastbp {fastbp.__version__}\n"

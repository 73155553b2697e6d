"""The rival suites of ``fastbp bench --suite`` and benchmarks/rivals.py: the FANN-file
reader, equal starting points and comparable work of the contenders, and smoke runs at
tiny sizes. Nothing here times anything: these machines are shared and noisy."""

import math

import numpy as np
import pytest

import fastbp
from fastbp.bench import fann as _fann
from fastbp.bench import ensemble, harness, machine, suites
from fastbp.datasets import load_fann
from fastbp.cli import main as cli_main

from ._util import asv_suites, run_asv_suite

SHAPES = {"diabetes": (384, 8, 2), "robot": (374, 48, 3), "thyroid": (3600, 21, 3),
          "two-spiral": (193, 2, 1)}


@pytest.fixture
def fann_lib():
    try:
        return _fann.load("float32")
    except ImportError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_shipped_fann_sets_read_with_their_header_shapes(name):
    X, Y = load_fann(suites.fann_data_dir() / f"{name}.train", "float32")
    n, d, k = SHAPES[name]
    assert X.shape == (n, d) and Y.shape == (n, k) and X.dtype == np.float32
    assert 0 <= X.min() and X.max() <= 1 and 0 <= Y.min() and Y.max() <= 1


def test_fann_data_folder_says_where_the_sets_come_from():
    text = (suites.fann_data_dir() / "README.md").read_text()
    assert "PROBEN1" in text and "LGPL" in text and "libfann/fann" in text


def test_feature_strings_for_the_other_vector_widths_and_the_machine_line():
    flags = machine.avx2_features().split(",")
    assert flags and not [f for f in flags if f.startswith(("+avx512", "+avx10"))]
    assert machine.zmm_features().endswith(",-prefer-256-bit")
    assert machine.vector_bits() in (0, 128, 256, 512)
    lines = machine.machine_info(1)
    assert lines[0].startswith("CPU:") and "Numba code:" in lines[0] and "-bit vectors" in lines[0]


def test_first_rprop_epoch_matches_fann_step_for_step(fann_lib):
    """FANN's first iRprop- step is delta_zero * increase: FannNet sets delta_zero so that
    both take the same first step from the same weights."""
    X, Y = suites.quadrants(40)
    Y = 0.2 + 0.6 * Y  # keep the sigmoid clear of FANN's derivative clipping
    net0 = suites.fann_style_network([2, 5, 1])
    rp = suites.RPROP
    with _fann.FannNet([2, 5, 1], algorithm=_fann.FANN_TRAIN_RPROP, hidden="tanh",
                       output="sigmoid", rprop=rp) as fnet:
        fnet.set_params(net0.weights, net0.biases)
        fnet.train_on_data(X, Y, 1)
        W, b = fnet.get_params()
    net = suites.fann_style_network([2, 5, 1])
    fastbp.Trainer(net, schedule="fullbatch", optimizer="rprop",
                   learning_rate=rp["initial_step"], etas=rp["etas"],
                   step_sizes=rp["step_sizes"], shuffle=False).fit(X, Y, epochs=1)
    for k, (got, want) in enumerate(zip(W + b, net.weights + net.biases)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"block {k}")
    assert not np.allclose(net.params, net0.params)


def test_fann_data_suite_starts_equal_and_ends_at_similar_losses(fann_lib):
    lines = []
    rows = suites.run_fann_data(["diabetes"], epochs=30, repeat=1, out=lines.append)
    (row,) = rows
    assert row["net"] == "8-32-2" and row["seconds"]["fastbp"] > 0 and row["seconds"]["fann"] > 0
    mse = row["mse"]
    assert mse["fastbp"] < row["mse_start"] and mse["fann"] < row["mse_start"]
    assert abs(mse["fastbp"] - mse["fann"]) < 0.1 * row["mse_start"]
    assert "geometric mean" in lines[-1]


def test_contenders_refuse_different_starting_weights(fann_lib):
    X, Y = suites.xor_data()
    net0 = suites.fann_style_network([2, 2, 1])
    other = suites.fann_style_network([2, 2, 1], seed=1)
    trials = {"fastbp": suites.fastbp_trial(net0, X, Y, schedule="fullbatch"),
              "fann": suites.fann_trial(other, X, Y, _fann.FANN_TRAIN_BATCH)}
    with pytest.raises(RuntimeError, match="same weights"):
        harness.check_same_start(trials, Y)


def test_tiny_suite_prints_a_table(fann_lib, capsys):
    assert cli_main(["bench", "--suite", "tiny", "--epochs", "20", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "Numba code:" in out
    for case in ("XOR 2-2-1", "XOR 2-4-1", "2-32-1    online", "2-32-1 fullbatch"):
        assert case in out
    assert out.count("x |") == 4


def test_sweep_suite_runs_at_tiny_sizes():
    lines = []
    grid = {"learning_rate": [0.05, 0.1], "seed": [0, 1]}
    rows = suites.run_sweep(("online", "16"), epochs=1, threads=1, repeat=1, grid=grid, n=150,
                            sklearn_jobs=1, out=lines.append)
    assert [r["schedule"] for r in rows] == ["online", "16"]
    for row in rows:
        assert row["models"] == 4 and row["efficiency"] > 0 and row["vs_sklearn"] > 0
        assert 0 <= row["accuracy"]["sweep"] <= 1 and 0 <= row["accuracy"]["sklearn"] <= 1
        # The sweep's models end where their own fits end: the same best accuracy.
        assert row["accuracy"]["sweep"] == row["accuracy"]["one by one"]


@pytest.mark.parametrize("torch", [False, True])
def test_models_table_trains_k_models_in_both_contenders(torch):
    if torch:
        pytest.importorskip("torch")
    lines = []
    rows = ensemble.run_models((2, 3), "16", epochs=3, threads=1, repeat=1, n=400,
                               out=lines.append, torch=torch)
    assert [r["models"] for r in rows] == [2, 3]
    assert len(lines) == 2 + 2 + 1 and lines[-1].startswith("rates in model-samples/s")
    for row in rows:
        assert row["rate"]["fastbp"] > 0 and 0 < row["of_peak"]
        assert row["gflops_per_core"] == pytest.approx(
            row["rate"]["fastbp"] * 6 * ensemble.weights() / 1e9)
        # Both contenders train: the best model is well above chance (0.1) after 3 epochs.
        assert row["accuracy"]["fastbp"] > 0.5
        if torch:
            assert row["accuracy"]["torch"] > 0.5 and row["ratio"] > 0
        else:
            assert "torch" not in row["rate"] and math.isnan(row["ratio"])


def test_bench_models_option_prints_the_table(capsys):
    assert cli_main(["bench", "--suite", "sweep", "--models", "2", "--epochs", "1",
                     "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "fastbp.Sweep" in out and "of peak" in out
    assert len([line for line in out.splitlines() if line.lstrip().startswith("2 ")]) == 1


@pytest.fixture(scope="module")
def rivals():
    with asv_suites("rivals") as module:
        yield module


@pytest.mark.parametrize("suite", ["FannData", "Tiny", "SweepScaling"])
def test_asv_rival_suites_run_once(rivals, suite):
    ran = run_asv_suite(getattr(rivals, suite))
    if suite != "SweepScaling":
        try:
            _fann.load("float32")
        except ImportError:
            return  # FANN not installed: its suites skip every combination
    assert ran > 0

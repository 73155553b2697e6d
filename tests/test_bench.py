"""Smoke runs of the benchmarks: every asv suite once on tiny data, and `fastbp bench`.
No timing is asserted: these machines are shared and noisy."""
import importlib

import pytest

from fastbp.cli import main as cli_main

from ._util import asv_suites, run_asv_suite


@pytest.fixture(scope="module")
def suites():
    with asv_suites("benchmarks") as module:
        yield module


@pytest.mark.parametrize("suite", ["TrainEpoch", "Threads"])
def test_asv_suites_run_once(suites, suite):
    assert run_asv_suite(getattr(suites, suite)) > 0


def test_compile_time_suite_measures_a_fresh_process(suites, tmp_path):
    seconds = suites.first_fit_seconds(str(tmp_path))
    assert 0 < seconds < 600


def test_bench_command_prints_a_table(capsys, tmp_path):
    plot = tmp_path / "speedup.png"
    args = ["bench", "--nets", "64-32-10", "--schedules", "online", "16", "--repeat", "1",
            "--backends", "loop", "vectorized", "fann"]  # fann: skipped when absent
    if importlib.util.find_spec("matplotlib"):
        args += ["--plot", str(plot)]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert "matrix product peak" in out
    assert "64-32-10 online" in out and "loop/vectorized" in out
    if importlib.util.find_spec("matplotlib"):
        assert plot.stat().st_size > 0

"""Smoke runs of the benchmarks: every asv suite once on tiny data, and `fastbp bench`.
No timing is asserted: these machines are shared and noisy."""
import importlib
import itertools

import pytest

from fastbp.cli import main as cli_main

from ._util import asv_suites


@pytest.fixture(scope="module")
def suites():
    with asv_suites("benchmarks") as module:
        yield module


@pytest.mark.parametrize("suite", ["TrainEpoch", "Threads"])
def test_asv_suites_run_once(suites, suite):
    cls = getattr(suites, suite)
    ran = 0
    for params in itertools.product(*cls.params):
        bench = cls()
        try:
            bench.setup(*params)
        except NotImplementedError:
            continue  # e.g. cuda without a GPU: asv skips it the same way
        try:
            for name in dir(cls):
                if name.startswith(("time_", "track_")):
                    result = getattr(bench, name)(*params)
                    assert result is None or result > 0, (name, params)
        finally:
            if hasattr(bench, "teardown"):
                bench.teardown(*params)
        ran += 1
    assert ran > 0


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

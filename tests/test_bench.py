"""Smoke runs of the benchmarks: every asv suite once on tiny data, and `fastbp bench`.
No timing is asserted: these machines are shared and noisy."""
import importlib
import os

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


def test_compile_time_suite_measures_a_fresh_process(suites):
    # The session's cache: a fresh process that loads its kernels (a cold one compiles for
    # a minute on a busy machine, and asv's own runs measure that).
    seconds = suites.first_fit_seconds(os.environ["NUMBA_CACHE_DIR"])
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


def test_plot_without_matplotlib_fails_before_benchmarking(monkeypatch, capsys, tmp_path):
    import sys
    from fastbp.bench import compare
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib: ImportError
    monkeypatch.setattr(compare, "run", lambda *a, **k: pytest.fail("benchmarked anyway"))
    assert cli_main(["bench", "--plot", str(tmp_path / "x.png")]) == 2
    assert "--plot needs matplotlib" in capsys.readouterr().err


def test_a_contender_is_warmed_up_on_the_rows_it_is_timed_on():
    """64 rows would not load the kernels of a batch of 256 or of a full batch: the last
    call before timing is on exactly the timed rows."""
    import numpy as np
    from fastbp.bench import compare
    seen = []
    X, y = np.zeros((1000, 3)), np.zeros(1000)
    epoch, m = compare._prepare(lambda: (lambda Xs, ys: seen.append(len(Xs)), None), X, y)
    assert m == 1000 and seen[-1] == m


_COMPILE_OUTSIDE_TIMING = """
import time, numba.core.dispatcher as d, numpy as np
clock, timing, inside, outside = time.perf_counter, [False], [], []
def perf_counter():  # the fit's timed regions: pairs of calls (start, stop)
    timing[0] = not timing[0]
    return clock()
compile_for_args = d.Dispatcher._compile_for_args
def counted(self, *args, **kw):  # a kernel's first call: compile, or load from the cache
    (inside if timing[0] else outside).append(self.py_func.__name__)
    return compile_for_args(self, *args, **kw)
d.Dispatcher._compile_for_args = counted
import fastbp
time.perf_counter = perf_counter
X, y = np.random.default_rng(0).normal(size=(300, 5)), np.arange(300) % 3
for kw in (dict(schedule="minibatch", batch_size=256), dict(schedule="online")):
    for callback in (None, lambda e, h: False):  # many epochs per call; epoch by epoch
        net = fastbp.Network([5, 7, 3], activations=["tanh", "softmax"],
                             loss="cross_entropy", seed=0)
        fastbp.Trainer(net, seed=0, threads=1, **kw).fit(X, y, epochs=2, callback=callback)
print(len(inside), len(outside), sorted(set(inside)))
"""


def test_history_seconds_never_include_compiling():
    """In a fresh process, every kernel a fit runs is compiled, or loaded from Numba's
    cache, before its epochs are timed (History.seconds, which fastbp bench and the asv
    tracks report): no first call of a kernel happens inside a timed region. Compiling and
    loading take the same first-call path (Dispatcher._compile_for_args), so the session's
    cache serves, and this test costs a load, not a compile."""
    import os
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", _COMPILE_OUTSIDE_TIMING],
                         capture_output=True, text=True, check=True).stdout.split(maxsplit=2)
    inside, outside = int(out[0]), int(out[1])
    assert outside > 0, "nothing compiled: the check saw nothing"
    assert inside == 0, f"compiled while timed: {out[2]}"

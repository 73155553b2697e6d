"""asv suites: loop vs vectorized (vs cuda where a GPU is present) per schedule, net size,
dtype and thread count, with throughput tracks, plus compile time.

Short by default; FASTBP_BENCH_FULL=1 sweeps every net, dtype and schedule.
FASTBP_BENCH_SMOKE=1 shrinks the data to a few batches (the CI smoke run).
Run: ``asv run --quick --python=same`` (or ``asv run --python=same`` for timings).
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

import fastbp
from fastbp import backends
from fastbp.bench import NETS, SCHEDULES, flop_per_sample, network, problem, trainer_options

FULL = os.environ.get("FASTBP_BENCH_FULL") == "1"
SMOKE = os.environ.get("FASTBP_BENCH_SMOKE") == "1"

BACKENDS = ["loop", "vectorized", "cuda"]
# The smoke run (CI) runs every suite's code on the smallest net: the wide ones only add
# kernel variants to compile.
NET_NAMES = list(NETS) if FULL else ["64-32-10"] if SMOKE else ["64-32-10", "784-128-10"]
SCHEDULE_NAMES = SCHEDULES if FULL else ["online", "64", "full"]
DTYPES = ["float32", "float64"] if FULL else ["float32"]


def _problem(net_name, dtype):
    sizes, n = NETS[net_name]
    n = 96 if SMOKE else min(n, 4096)
    X, y = problem(sizes, n, dtype)
    return network(sizes, dtype), X, y


def _trainer(net, schedule, backend, n):
    return fastbp.Trainer(net, **trainer_options(schedule, n), learning_rate=0.01, seed=0,
                          backend=backend)


def _require(backend):
    """NotImplementedError (asv: skipped) for a backend this machine cannot time."""
    if backend == "cuda" and os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        raise NotImplementedError("the CUDA simulator checks logic, not speed")
    try:
        backends.get(backend)
    except (ImportError, RuntimeError) as exc:
        raise NotImplementedError(str(exc)) from None


def _check_against_vectorized(net, X, y, backend):
    """The backend's gradient equals the vectorized formulation's (checked once, in setup)."""
    rows = slice(0, min(len(X), 32))
    got = net.gradients(X[rows], y[rows], backend=backend)[0][0]
    ref = net.gradients(X[rows], y[rows], backend="vectorized")[0][0]
    tol = 1e-3 if net.dtype == np.float32 else 1e-9
    if not np.allclose(got, ref, rtol=tol, atol=tol * 1e-2):
        raise AssertionError(f"{backend} gradients disagree with the vectorized formulation")


class TrainEpoch:
    """One epoch of training, per backend x net x schedule x dtype."""
    params = [BACKENDS, NET_NAMES, SCHEDULE_NAMES, DTYPES]
    param_names = ["backend", "net", "schedule", "dtype"]
    timeout = 300

    def setup(self, backend, net_name, schedule, dtype):
        _require(backend)
        self.net, self.X, self.y = _problem(net_name, dtype)
        if backend == "vectorized" and schedule == "online" and net_name != "64-32-10":
            self.X, self.y = self.X[:512], self.y[:512]  # about 10k samples/s: keep it short
        _check_against_vectorized(self.net, self.X, self.y, backend)
        self.trainer = _trainer(self.net, schedule, backend, len(self.X))
        # Warm up on exactly what is timed: 64 rows would not load a batch of 256's kernels.
        self.trainer.fit(self.X, self.y, epochs=1)
        self.flop = flop_per_sample(self.net)

    def time_epoch(self, *params):
        self.trainer.fit(self.X, self.y, epochs=1)

    def track_samples_per_second(self, *params):
        history = self.trainer.fit(self.X, self.y, epochs=3)
        return len(self.X) / min(history.seconds)
    track_samples_per_second.unit = "samples/s"

    def track_gflops(self, *params):
        return self.track_samples_per_second() * self.flop / 1e9
    track_gflops.unit = "GFLOP/s"


class Threads:
    """Loop kernels on 1 thread and on all threads (mini-batch and full batch)."""
    params = [[1, 2], ["784-128-10"] + (["784-512-512-10"] if FULL else []), ["64", "full"]]
    param_names = ["threads", "net", "schedule"]
    timeout = 300

    def setup(self, threads, net_name, schedule):
        import numba
        if threads > numba.config.NUMBA_NUM_THREADS:
            raise NotImplementedError(f"only {numba.config.NUMBA_NUM_THREADS} threads")
        numba.set_num_threads(threads)
        self.net, self.X, self.y = _problem(net_name, "float32")
        self.trainer = _trainer(self.net, schedule, "loop", len(self.X))
        self.trainer.fit(self.X, self.y, epochs=1)  # warm up on exactly what is timed

    def teardown(self, *params):
        import numba
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)

    def time_epoch(self, *params):
        self.trainer.fit(self.X, self.y, epochs=1)

    def track_samples_per_second(self, *params):
        return len(self.X) / min(self.trainer.fit(self.X, self.y, epochs=3).seconds)
    track_samples_per_second.unit = "samples/s"


_FIRST_FIT = """
import time, numpy as np
start = time.perf_counter()
import fastbp
net = fastbp.Network([8, 6, 3], activations=["tanh", "softmax"], loss="cross_entropy", seed=0)
fastbp.Trainer(net, batch_size=4).fit(np.zeros((12, 8)), np.arange(12) % 3, epochs=1)
print(time.perf_counter() - start)
"""


def first_fit_seconds(cache_dir):
    """Seconds from `import fastbp` to the end of a first small fit, in a fresh process."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", _FIRST_FIT], env=env, check=True,
                         capture_output=True, text=True).stdout
    return float(out.split()[-1])


class CompileTime:
    """Import plus first fit in a fresh process: with an empty Numba cache, and warm."""
    timeout = 600
    number = 1
    repeat = 1

    def setup(self):
        self.cache = tempfile.mkdtemp(prefix="fastbp-asv-cache-")

    def track_cold_seconds(self):
        return first_fit_seconds(tempfile.mkdtemp(prefix="fastbp-asv-cold-"))
    track_cold_seconds.unit = "s"

    def track_warm_seconds(self):
        first_fit_seconds(self.cache)  # fills the cache
        return first_fit_seconds(self.cache)
    track_warm_seconds.unit = "s"

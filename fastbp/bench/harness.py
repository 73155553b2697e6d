"""The timing harness every ``fastbp bench`` table shares: pin the threads
(``set_threads``), measure the BLAS matrix-product peak (``matmul_peak``), time
contenders in alternation so that a noisy neighbour hurts all alike (``alternate``,
pausing with ``settle`` between them), and the trials protocol of the rival suites
(``best_of``, ``check_same_start``, ``mse``, ``geomean``).

A trial(epochs) builds a fresh copy of a contender from net0 (not timed), trains it for
``epochs`` epochs in one call (timed) and returns (seconds, outputs on X after training);
``trial.initial()``, where a trial has it, returns the untrained copy's outputs on X.
"""
import math
import time

import numpy as np


def set_threads(threads):
    """Pin Numba, BLAS (through threadpoolctl when installed) and PyTorch to ``threads``."""
    import numba

    from fastbp import _parallel
    _parallel.ensure_layer()  # before Numba starts its threads, or it settles on OpenMP
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    limited = "unchanged (install threadpoolctl to pin it)"
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads)
        limited = str(threads)
    except ImportError:
        pass
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError:
        pass
    return limited


def matmul_peak(dtype, seconds=0.3):
    """Measured GFLOP/s of a 512 x 512 x 512 NumPy matrix product (BLAS), best of a few."""
    rng = np.random.default_rng(0)
    a, b = rng.random((512, 512)).astype(dtype), rng.random((512, 512)).astype(dtype)
    best, deadline = np.inf, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * 512 ** 3 / best / 1e9


def settle(seconds=0.25):
    """Pause before a contender's timing when contenders alternate on several threads: the
    idle threads of the previous one (OpenBLAS for about 0.1 s, OpenMP and TBB too)
    spin-wait after its last parallel call and would take cores from the next. On one
    thread (set_threads pins Numba, BLAS and PyTorch alike) there is nothing to wait for,
    and a pause would only let the core clock down before a short timing (a 1 ms online
    epoch of 64-32-10 then reads 30% slow)."""
    import numba

    from fastbp import _parallel
    _parallel.ensure_layer()
    if numba.get_num_threads() > 1:
        time.sleep(seconds)


def alternate(contenders, repeat):
    """{name: [what its call returned, round by round]}: ``repeat`` rounds in which every
    contender (a call without arguments) is called once, the contenders alternating
    within each round and, when there are several, ``settle`` before each call."""
    results = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, call in contenders.items():
            if len(contenders) > 1:
                settle()
            results[name].append(call())
    return results


def best_of(trials, epochs, repeat, warmup_epochs=2):
    """{name: (best seconds, outputs of the last trial)}: one warm-up run each (compiles),
    then ``repeat`` rounds, the contenders alternating within each round."""
    for trial in trials.values():
        trial(warmup_epochs)
    runs = alternate({name: (lambda trial=trial: trial(epochs))
                      for name, trial in trials.items()}, repeat)
    return {name: (min((seconds for seconds, _ in done), default=math.inf),
                   done[-1][1] if done else None)
            for name, done in runs.items()}


def mse(out, Y):
    """FANN's MSE: the mean of (y - a)^2 over samples and outputs."""
    return float(np.mean((np.asarray(out, np.float64) - Y) ** 2))


def check_same_start(trials, Y, tol=1e-4):
    """Every contender's untrained network gives the same outputs (same initial weights);
    returns their MSE on Y. Raises RuntimeError for a contender that starts elsewhere."""
    outs = {name: trial.initial() for name, trial in trials.items()}
    first = next(iter(outs.values()))
    for name, out in outs.items():
        if not np.allclose(out, first, rtol=tol, atol=tol):
            raise RuntimeError(f"{name} does not start from the same weights")
    return mse(first, Y)


def geomean(values):
    """The geometric mean of the positive, finite values (nan when there are none)."""
    values = [v for v in values if v > 0 and math.isfinite(v)]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else math.nan

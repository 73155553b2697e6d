"""Compile every CPU kernel ahead: ``fastbp warmup`` (or ``fastbp.warmup.run()``), once
after installing.

fastbp's loop kernels are compiled by Numba the first time a process needs them, once per
dtype and kind of work, and kept in Numba's on-disk cache; a first fit waits for the ones
it takes (seconds to tens of seconds, more for float64, which scikit-learn's estimators
use by default). This runs small fits that take every path a fit, a sweep, a one-off pass
or an estimator can take -- both dtypes, online and batches, SGD (plain and with
momentum), Adam and RPROP, many epochs per call and epoch by epoch, serial and threaded,
with and without the packed products -- so that every later process loads them from the
cache instead. Nothing is trained that is kept.
"""
import time

import numpy as np

# Work that switches the threaded kernels and the packed products on: a layer of
# 256 x 128 inputs over 256 samples is past both thresholds.
_BIG = (256, 128, 10)


def _cases():
    """(title, function) pairs, each a small fit or pass that compiles one set of kernels."""
    import fastbp
    rng = np.random.default_rng(0)
    cases = []
    for dtype in ("float32", "float64"):
        X = rng.normal(size=(300, 8)).astype(dtype)
        y = rng.integers(0, 3, 300)
        Xb = rng.normal(size=(300, _BIG[0])).astype(dtype)
        yb = rng.integers(0, _BIG[-1], 300)

        def net(sizes=(8, 6, 3), dtype=dtype):
            return fastbp.Network(list(sizes), activations=["tanh", "softmax"],
                                  loss="cross_entropy", dtype=dtype, seed=0)

        def fit(options, data=(X, y), sizes=(8, 6, 3), per_epoch=False, dtype=dtype):
            def run():
                trainer = fastbp.Trainer(net(sizes, dtype), seed=0, **options)
                kw = dict(callback=lambda e, h: False) if per_epoch else {}
                trainer.fit(*data, epochs=1, **kw)
                trainer.net.loss(*data)
                trainer.net.gradients(*data)
            return run

        for per_epoch in (False, True):
            for options in (dict(schedule="online"),
                            dict(schedule="online", momentum=0.9),
                            dict(schedule="minibatch", batch_size=16),
                            dict(schedule="minibatch", batch_size=16, optimizer="adam"),
                            dict(schedule="fullbatch", optimizer="rprop")):
                what = ", ".join(f"{k}={v}" for k, v in options.items())
                cases.append((f"{dtype} fit ({what}{', epoch by epoch' if per_epoch else ''})",
                              fit(options, per_epoch=per_epoch)))
            cases.append((f"{dtype} fit, threads and packed products"
                          f"{', epoch by epoch' if per_epoch else ''}",
                          fit(dict(schedule="minibatch", batch_size=256, threads=2),
                              data=(Xb, yb), sizes=_BIG, per_epoch=per_epoch)))
        for schedule in ("online", "minibatch"):
            # Every name the case uses is bound now: the cases run after these loops end.
            def sweep(schedule=schedule, dtype=dtype, X=X, y=y):
                fastbp.Sweep([8, 6, 3], activations=["tanh", "softmax"], loss="cross_entropy",
                             dtype=dtype, schedule=schedule, batch_size=16,
                             grid={"seed": [0, 1]}).fit(X, y, epochs=1)
            cases.append((f"{dtype} sweep ({schedule})", sweep))
        cases.append((f"{dtype} forward on one row",
                      lambda dtype=dtype: net(dtype=dtype).forward(np.zeros(8, dtype))))
        for label, options in (("online SGD", dict(schedule="online")),
                               ("Adam", dict(optimizer="adam"))):
            def step(options=options, dtype=dtype):
                targets = np.zeros((1, 3), dtype)
                targets[0, 1] = 1
                fastbp.Trainer(net(dtype=dtype), **options).step(np.zeros((1, 8), dtype),
                                                                  targets)
            cases.append((f"{dtype} step on one row ({label})", step))
        cases.append((f"{dtype} forward, threads and packed products",
                      lambda dtype=dtype: net(_BIG, dtype).forward(
                          np.zeros((1 << 14, _BIG[0]), dtype))))
    return cases


def run(out=print):
    """Compile every kernel (see the module docstring); returns the seconds it took."""
    from fastbp import _session
    started = time.perf_counter()
    cases = _cases()
    for k, (title, case) in enumerate(cases, start=1):
        begun = time.perf_counter()
        with _session.numba_threads(None):
            case()
        out(f"[{k}/{len(cases)}] {title}: {time.perf_counter() - begun:.1f} s")
    seconds = time.perf_counter() - started
    out(f"compiled every kernel in {seconds:.0f} s; later runs load them from Numba's cache")
    return seconds

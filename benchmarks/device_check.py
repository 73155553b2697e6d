"""The one prepared GPU run: correctness on the hardware and the figures the cuda backend's
routing and tuning wait for, as JSON.

    PYTHONPATH=. python benchmarks/device_check.py --out device_check.json
    NUMBA_ENABLE_CUDASIM=1 python benchmarks/device_check.py --out q.json --quick   # CI

Steps, in this order, each guarded (a failure is recorded in the JSON and the next step
runs) and each within a time budget (its measurements stop early when it runs out); the
JSON is rewritten after every step, and a watchdog writes it and exits before --budget
seconds (default 460, inside an 8-minute slot with compilation included):

  correctness      on the hardware: the fused epoch with its warp-shuffle sums (which the
                   simulator replaces by shared memory), in shared and in global memory,
                   the per-layer path, Adam and RPROP, against the loop backend (rtol 2e-4
                   in float32, 1e-10 in float64); two identical fits bit for bit; the
                   kernels on device arrays against the vectorized formulation; the sweep
                   kernel against loop.sweep_epoch, model k of a K-model launch against
                   its K = 1 launch bit for bit, and a model whose parameters and state
                   need more than 48 KiB of shared memory (the opt-in);
  fused_epoch      samples/s of one fused launch per epoch for 64-32-10 online and at batch
                   16 and for 784-128-10 online, beside the loop backend on this host;
  launch_overhead  numba's host cost per launch: an empty kernel, and one with the fused
                   epoch's 24 arguments;
  layers           TFLOP/s of the per-layer kernels (forward, delta, gradient) at
                   784-512-512-10, batch 1024, against torch.matmul on the same shapes;
  sweep            K = 1024 models of 64-32-10 at batch 16 in one launch per epoch
                   (cuda.sweep_epoch): model-samples/s, against a torch.func.vmap ensemble
                   of the same models (stack_module_state + functional_call + vmap(grad) +
                   plain SGD, every model on the same batches), and the loop backend's
                   sweep_epoch on a few models for scale.

It runs with the GPU machine's own Python (numba, numba-cuda, PyTorch and CuPy, no package
index, no ``tbb``): fastbp from the source tree (PYTHONPATH, or the checkout this file is
in). ``--quick`` runs a reduced version of every step (tiny shapes, few repetitions;
PyTorch steps recorded as skipped where torch is absent) in seconds, under the simulator
in CI (tests/test_cuda_sweep.py).
"""
import argparse
import contextlib
import datetime
import json
import os
import platform
import sys
import threading
import time
import traceback
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # fastbp from this checkout when PYTHONPATH does not name it
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

STEPS = ("correctness", "fused_epoch", "launch_overhead", "layers", "sweep")
# Share of the total budget each step may take (the rest: start-up, the environment).
SHARES = {"correctness": 0.24, "fused_epoch": 0.22, "launch_overhead": 0.05, "layers": 0.14,
          "sweep": 0.30}


def progress(message):
    print(f"progress: {message}", flush=True)


class Report:
    """The JSON report, written (atomically) after every step and by the watchdog."""

    def __init__(self, path, quick):
        self.path, self.lock = path, threading.Lock()
        self.data = {"script": "benchmarks/device_check.py", "quick": quick,
                     "simulator": os.environ.get("NUMBA_ENABLE_CUDASIM") == "1",
                     "started": datetime.datetime.now().isoformat(timespec="seconds"),
                     "environment": {}, "steps": {}}
        self.t0 = time.perf_counter()

    def write(self, **extra):
        with self.lock:
            self.data.update(extra)
            self.data["seconds"] = round(time.perf_counter() - self.t0, 2)
            tmp = f"{self.path}.tmp"
            with open(tmp, "w") as f:
                json.dump(self.data, f, indent=1, default=_jsonable)
            os.replace(tmp, self.path)


def _jsonable(value):
    """What json cannot write by itself: NumPy scalars and arrays; anything else as repr."""
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return repr(value)


class Deadline:
    """A step's time budget: ``left()`` seconds remain; ``over()`` once spent."""

    def __init__(self, seconds):
        self.end = time.perf_counter() + seconds

    def left(self):
        return self.end - time.perf_counter()

    def over(self):
        return self.left() <= 0


def _version(name):
    try:
        from importlib import metadata
        return metadata.version(name)
    except Exception:
        return None


def environment():
    """Versions, the device and the host."""
    env = {"python": platform.python_version(), "platform": platform.platform(),
           "cpus": os.cpu_count(), "numpy": np.__version__, "numba": _version("numba"),
           "numba_cuda": _version("numba-cuda") or _version("numba_cuda"),
           "torch": _version("torch"), "cupy": (_version("cupy-cuda13x")
                                                or _version("cupy-cuda12x") or _version("cupy")),
           "tbb": _version("tbb")}
    import numba
    from fastbp import _parallel
    env["threading_layer_asked"] = _parallel.ensure_layer()
    env["numba_threads"] = numba.get_num_threads()
    from fastbp.kernels import cuda_config as config
    env["numba_cuda_imported"] = config.cuda is not None
    if config.cuda is None:
        env["device"] = f"numba-cuda missing: {config.IMPORT_ERROR}"
        return env
    cuda = config.cuda
    try:
        device = cuda.get_current_device()
        name = getattr(device, "name", "?")
        env["device"] = name.decode() if isinstance(name, bytes) else str(name)
        env["compute_capability"] = list(getattr(device, "compute_capability", ()))
        for attr in ("MULTIPROCESSOR_COUNT", "MAX_SHARED_MEMORY_PER_BLOCK_OPTIN",
                     "MAX_SHARED_MEMORY_PER_MULTIPROCESSOR", "MAX_REGISTERS_PER_BLOCK"):
            with contextlib.suppress(Exception):
                env[attr.lower()] = int(getattr(device, attr))
    except Exception as exc:
        env["device"] = f"unavailable: {exc!r}"
    with contextlib.suppress(Exception):
        from numba.cuda.cudadrv.driver import driver
        env["driver_cuda_version"] = list(driver.get_version())
    with contextlib.suppress(Exception):
        env["runtime_cuda_version"] = list(cuda.runtime.get_version())
    with contextlib.suppress(Exception):
        import subprocess
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=20)
        env["nvidia_smi"] = out.stdout.strip()
    return env


# -- helpers --------------------------------------------------------------------------------------

def _sync():
    from fastbp.kernels.cuda_config import cuda
    cuda.synchronize()


def _rel_err(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = np.maximum(np.abs(want), 1e-6 if got.dtype == np.float32 else 1e-12)
    return float(np.max(np.abs(got - want) / scale)) if got.size else 0.0


def _close(got, want, dtype):
    rtol, atol = (2e-4, 2e-6) if np.dtype(dtype) == np.float32 else (1e-10, 1e-12)
    return bool(np.allclose(got, want, rtol=rtol, atol=atol))


@contextlib.contextmanager
def tunables(**values):
    """cuda_config's tunables set for the block, then restored."""
    from fastbp.kernels import cuda_config as config
    old = {k: getattr(config, k) for k in values}
    for k, v in values.items():
        setattr(config, k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(config, k, v)


def _data(n, n_in, n_out, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in)).astype(dtype)
    y = rng.integers(0, n_out, n)
    return X, y, np.eye(n_out, dtype=dtype)[y]


class EpochArrays:
    """The arrays of one train_epoch (or, with K models, sweep_epoch) call of the backend
    contract, for synthetic data; ``device`` puts the big ones on the GPU once."""

    def __init__(self, sizes, acts, n, batch_size, dtype="float32", K=None, opt="sgd",
                 lr=0.01, momentum=0.0, nesterov=False, l2=0.0, seed=0, rows=None):
        import fastbp
        from fastbp.kernels import codes
        self.net = fastbp.Network(sizes, activations=acts, loss="cross_entropy", dtype=dtype,
                                  seed=seed)
        P, units = self.net.n_params, int(sum(sizes))
        rows = rows or min(batch_size, 256)
        shape = () if K is None else (K,)
        self.K = K
        self.X, y, self.Y = _data(n, sizes[0], sizes[-1], dtype, seed)
        self.SW = np.empty(0, dtype)
        rng = np.random.default_rng(seed + 1)
        if K is None:
            self.params = self.net.params.copy()
            self.order = rng.permutation(n).astype(np.int64)
        else:
            self.params = np.stack([fastbp.Network(sizes, activations=acts, dtype=dtype,
                                                   seed=seed + k).params for k in range(K)])
            self.order = np.stack([rng.permutation(n) for _ in range(K)]).astype(np.int64)
        self.state = np.zeros(shape + (2, P), dtype)
        self.steps = np.zeros(shape + (1,), np.int64)
        self.grad = np.zeros(shape + (P,), dtype)
        self.A = np.zeros(shape + (rows * units,), dtype)
        self.Dl = np.zeros_like(self.A)
        self.cost = np.zeros(shape + (rows,))
        self.Yb = np.zeros(shape + (rows, sizes[-1]), dtype)
        self.Sb = np.zeros(shape + (0,), dtype)
        h = np.zeros(codes.N_HYPER)
        h[codes.H_LR], h[codes.H_MOMENTUM] = lr, momentum
        h[codes.H_NESTEROV], h[codes.H_L2] = float(nesterov), l2
        h[codes.H_BETA1], h[codes.H_BETA2], h[codes.H_EPS] = 0.9, 0.999, 1e-8
        h[codes.H_ETA_MINUS], h[codes.H_ETA_PLUS] = 0.5, 1.2
        h[codes.H_STEP_MIN], h[codes.H_STEP_MAX] = 1e-6, 50.0
        self.hyper = h if K is None else np.tile(h, (K, 1))
        self.stats = np.zeros(shape + (4,))
        if opt == "rprop":
            self.state[..., 1, :] = lr  # RPROP's initial step sizes, as Trainer sets them
        self.active = None if K is None else np.ones(K, bool)
        self.batch_size, self.opt = batch_size, codes.OPTIMIZERS[opt]

    def device(self, kernels, names=("params", "state", "grad", "A", "Dl", "cost", "Yb", "Sb",
                                     "X", "Y", "SW", "order", "stats")):
        for name in names:
            setattr(self, name, kernels.to_device(getattr(self, name)))
        return self

    def train_epoch(self, kernels):
        kernels.train_epoch(self.params, self.state, self.steps, self.grad, self.A, self.Dl,
                            self.cost, self.Yb, self.Sb, self.X, self.Y, self.SW, self.order,
                            self.batch_size, self.net.sizes, self.net.act_codes,
                            self.net.loss_code, self.opt, self.hyper, self.net.bias,
                            self.stats)

    def sweep_epoch(self, kernels):
        kernels.sweep_epoch(self.params, self.state, self.steps, self.grad, self.A, self.Dl,
                            self.cost, self.Yb, self.Sb, self.X, self.Y, self.SW, self.order,
                            self.active, self.batch_size, self.net.sizes, self.net.act_codes,
                            self.net.loss_code, self.opt, self.hyper, self.net.bias,
                            self.stats)


def _rate(run, samples, deadline, min_reps=1, max_reps=50, target=None):
    """(samples per second of the best of several timed runs, runs) within the deadline;
    ``run`` does the work and synchronizes. The first call is a warm-up (compilation)."""
    run()
    best, reps = float("inf"), 0
    target = target or max(0.5, min(3.0, deadline.left() / 6))
    spent = 0.0
    while reps < max_reps and (reps < min_reps or (spent < target and not deadline.over())):
        t = time.perf_counter()
        run()
        dt = time.perf_counter() - t
        best, reps, spent = min(best, dt), reps + 1, spent + dt
    return samples / best, reps


# -- (a) correctness ------------------------------------------------------------------------------

def step_correctness(quick, deadline):
    """A subset of tests/test_cuda.py and tests/test_cuda_sweep.py, through the library."""
    from fastbp.kernels import cuda as ck, cuda_config as config, loop, vectorized
    checks = {}

    def check(name, fn):
        if deadline.over():  # not run: recorded, not failed
            checks[name] = {"ok": None, "skipped": "out of time"}
            progress(f"correctness {name}: skipped, out of time")
            return
        t = time.perf_counter()
        try:
            result = fn()
        except Exception as exc:
            result = {"ok": False, "error": repr(exc), "trace": traceback.format_exc()[-1500:]}
        result["seconds"] = round(time.perf_counter() - t, 2)
        checks[name] = result
        progress(f"correctness {name}: {'ok' if result.get('ok') else 'FAILED'}")

    # Every comparison with the loop backend goes through train_epoch and sweep_epoch, the
    # entry points steps (b) and (e) time too: the loop backend compiles each once (about
    # 15 s apiece on a CPU core), not once per step.
    sizes, acts = ([9, 40, 3], ["tanh", "softmax"]) if not quick else ([5, 7, 3],
                                                                       ["tanh", "softmax"])
    n = 40 if not quick else 7
    fused_threads = [256, 16] if not quick else [8]
    cases = [("sgd", 1, dict(lr=0.1, momentum=0.9, l2=0.01)),
             ("sgd", 3, dict(lr=0.1, momentum=0.9, nesterov=True)),
             ("adam", 5, dict(lr=0.01, l2=0.01)),
             ("rprop", n, dict(lr=0.05))]
    if quick:
        cases = cases[1:3]

    def epochs(kernels, opt, batch, hyper, dtype, seed=3, count=2):
        arrays = EpochArrays(sizes, acts, n, batch, dtype, opt=opt, seed=seed, **hyper)
        for _ in range(count):
            arrays.train_epoch(kernels)
            arrays.order = arrays.order[::-1].copy()
        return arrays

    def fused_vs_loop(dtype, path, threads, which=None):
        def run():
            worst, ok = 0.0, True
            for opt, batch, hyper in (cases if which is None else [cases[which]]):
                ref = epochs(loop, opt, batch, hyper, dtype)
                with tunables(FUSED=path != "per-layer",
                              FUSED_PARAMS_IN_SHARED=path == "fused", FUSED_THREADS=threads):
                    got = epochs(ck, opt, batch, hyper, dtype)
                for name in ("params", "state", "stats"):
                    ok &= _close(getattr(got, name), getattr(ref, name), dtype)
                ok &= bool(np.array_equal(got.steps, ref.steps))
                worst = max(worst, _rel_err(got.params, ref.params))
            return {"ok": bool(ok), "max_rel_err": worst,
                    "warp_shuffles": not config.SIMULATOR and path != "per-layer"}
        return run

    for threads in fused_threads:
        check(f"fused_shared_float32_{threads}threads", fused_vs_loop("float32", "fused", threads))
    check("fused_global_float32", fused_vs_loop("float32", "fused-global", fused_threads[0]))
    check("per_layer_float32", fused_vs_loop("float32", "per-layer", fused_threads[0]))

    def repeat_bitwise():
        runs = [epochs(ck, "adam", 4, dict(lr=0.05), "float32", seed=4) for _ in range(2)]
        same_fit = bool(np.array_equal(runs[0].params, runs[1].params))
        sweeps = []
        for _ in range(2):
            arrays = EpochArrays(sizes, acts, n, 4, K=3, opt="adam", lr=0.01, seed=2)
            arrays.sweep_epoch(ck)
            sweeps.append(arrays.params)
        same_sweep = bool(np.array_equal(sweeps[0], sweeps[1]))
        return {"ok": same_fit and same_sweep, "fit": same_fit, "sweep": same_sweep}
    check("two_identical_runs_bitwise", repeat_bitwise)

    def kernels_vs_vectorized():
        arrays = EpochArrays([7, 33, 5], ["sigmoid", "softmax"], 19, 19, "float64", seed=5)
        net, N = arrays.net, 19
        sizes_, acts_ = net.sizes, net.act_codes
        A = np.zeros(N * int(sizes_.sum()))
        A[:N * 7] = arrays.X.ravel()
        A_ref, D_ref = A.copy(), np.zeros_like(A)
        vectorized.forward(A_ref, net.params, N, sizes_, acts_)
        vectorized.output_delta(D_ref, A_ref, arrays.Y, np.empty(0), N, sizes_, acts_,
                                net.loss_code)
        vectorized.hidden_deltas(D_ref, A_ref, net.params, N, sizes_, acts_)
        g_ref = np.zeros_like(net.params)
        vectorized.accumulate_gradients(g_ref, D_ref, A_ref, N, sizes_)
        dA, dp = ck.to_device(A), ck.to_device(net.params)
        dD, dg = ck.to_device(D_ref.copy()), ck.to_device(np.zeros_like(net.params))
        ck.forward(dA, dp, N, sizes_, acts_)
        ck.hidden_deltas(dD, dA, dp, N, sizes_, acts_)
        ck.accumulate_gradients(dg, dD, dA, N, sizes_)
        got = [x.copy_to_host() for x in (dA, dD, dg)]
        errs = [_rel_err(g, w) for g, w in zip(got, (A_ref, D_ref, g_ref))]
        return {"ok": all(_close(g, w, "float64") for g, w in zip(got, (A_ref, D_ref, g_ref))),
                "max_rel_err": max(errs)}
    check("layer_kernels_vs_vectorized", kernels_vs_vectorized)

    def sweep_checks(opt, sizes_s, acts_s, K, batch, n_s, dtype, bitwise_k):
        def run():
            arrays = EpochArrays(sizes_s, acts_s, n_s, batch, dtype, K=K, opt=opt, lr=0.01,
                                 momentum=0.9 if opt == "sgd" else 0.0, seed=6)
            arrays.hyper[:, 0] *= np.linspace(0.5, 2.0, K)  # each model its own rate
            start = {k: getattr(arrays, k).copy() for k in ("params", "state", "steps",
                                                           "stats", "order", "hyper")}
            ref = EpochArrays(sizes_s, acts_s, n_s, batch, dtype, K=K, opt=opt, seed=6)
            for k, v in start.items():
                setattr(ref, k, v.copy())
            arrays.sweep_epoch(ck)
            launch = dict(ck.last_sweep_launch())  # where the parameters lived, opt-in
            ref.sweep_epoch(loop)
            ok = all(_close(getattr(arrays, k), getattr(ref, k), dtype)
                     for k in ("params", "state", "stats")) and np.array_equal(arrays.steps,
                                                                                 ref.steps)
            result = {"ok": bool(ok), "max_rel_err": _rel_err(arrays.params, ref.params)}
            same = []
            for k in bitwise_k:  # model k alone: the same bits as in the K-model launch
                one = EpochArrays(sizes_s, acts_s, n_s, batch, dtype, K=1, opt=opt, seed=6)
                for name, v in start.items():
                    setattr(one, name, v[k:k + 1].copy())
                one.sweep_epoch(ck)
                same.append(bool(np.array_equal(one.params[0], arrays.params[k])
                                 and np.array_equal(one.state[0], arrays.state[k])))
            result["k_independent"] = all(same)
            result["ok"] = result["ok"] and all(same)
            result["launch"] = launch
            return result
        return run

    if quick:
        with tunables(SWEEP_THREADS=8):
            check("sweep_vs_loop_float32", sweep_checks("sgd", [5, 7, 3], acts, 3, 3, 7,
                                                        "float32", [2]))
    else:
        check("sweep_vs_loop_float32", sweep_checks("sgd", [64, 32, 10], acts, 64, 16, 256,
                                                    "float32", [0, 37, 63]))
        check("sweep_rprop_fullbatch", sweep_checks("rprop", [9, 40, 3], acts, 4, 40, 40,
                                                    "float32", [1]))
        # Parameters and Adam state of 128-64-10 take 107 KiB: above 48 KiB, the opt-in.
        check("sweep_shared_opt_in", sweep_checks("adam", [128, 64, 10], acts, 8, 16, 64,
                                                  "float32", [5]))
    # float64 last (one more compilation of each side): rtol 1e-10.
    adam = [c[0] for c in cases].index("adam")
    check("fused_shared_float64", fused_vs_loop("float64", "fused", fused_threads[0], adam))
    failed = [name for name, c in checks.items() if c.get("ok") is False]
    skipped = [name for name, c in checks.items() if c.get("ok") is None]
    return {"status": "failed" if failed else "ok", "failed": failed, "skipped": skipped,
            "checks": checks}


# -- (b) the fused epoch --------------------------------------------------------------------------

def step_fused_epoch(quick, deadline):
    from fastbp.kernels import cuda as ck, loop
    cases = ([("64-32-10", [64, 32, 10], 1), ("64-32-10", [64, 32, 10], 16),
              ("784-128-10", [784, 128, 10], 1)] if not quick
             else [("8-6-3", [8, 6, 3], 1), ("8-6-3", [8, 6, 3], 4)])
    rows = []
    for name, sizes, batch in cases:
        if deadline.over():
            rows.append({"net": name, "batch_size": batch, "skipped": "out of time"})
            continue
        P = sum(o * (i + 1) for i, o in zip(sizes[:-1], sizes[1:]))
        row = {"net": name, "batch_size": batch, "flop_per_sample": 6 * P}
        share = Deadline(deadline.left() / (len(cases) - len(rows)))
        try:
            plan = ck.fused_plan(batch, sizes, [2, 4], np.float32, 0)
            row["path"] = ("per-layer" if plan is None else
                           "fused/shared" if plan.in_shared else "fused/global")
            for backend, kernels in (("cuda", ck), ("loop", loop)):
                n = 8 if quick else 512  # a probe, then sized to about a second
                for attempt in range(2):
                    arrays = EpochArrays(sizes, ["tanh", "softmax"], n, batch, seed=7)
                    if backend == "cuda":
                        arrays.device(ck)

                    def run():
                        arrays.train_epoch(kernels)
                    rate, reps = _rate(run, n, share, max_reps=1 if quick else
                                       3 if attempt == 0 else 5,
                                       target=0.3 if attempt == 0 else None)
                    if quick or attempt == 1:
                        break
                    n = int(min(60000, max(n, rate * min(1.0, share.left() / 8))))
                row[f"{backend}_samples_per_s"] = rate
                row[f"{backend}_gflops"] = rate * 6 * P / 1e9
                row[f"{backend}_samples"] = n
                progress(f"fused_epoch {name} batch {batch} {backend}: {rate:,.0f} samples/s")
            row["cuda_over_loop"] = row["cuda_samples_per_s"] / row["loop_samples_per_s"]
        except Exception as exc:
            row["error"] = repr(exc)
            row["trace"] = traceback.format_exc()[-1500:]
        rows.append(row)
    failed = any("error" in r for r in rows)
    return {"status": "failed" if failed else "ok", "rows": rows}


# -- (c) launch overhead --------------------------------------------------------------------------

def step_launch_overhead(quick, deadline):
    from fastbp.kernels import cuda_config as config
    cuda = config.cuda

    @cuda.jit
    def empty():
        pass

    @cuda.jit
    def many(a0, a1, a2, a3, a4, a5, a6, a7, a8, i9, a10, i11, b12, i13, i14, i15, i16, i17,
             i18, i19, a20, i21, b22, a23):
        # The fused epoch's 24 arguments: 12 arrays, 10 integers, 2 booleans; does nothing.
        if i9 < 0 and b12 and b22:
            a0[0] = a23[0]

    f32 = np.zeros(16, np.float32)
    args = [cuda.to_device(f32) for _ in range(9)]
    args[4], args[5] = (cuda.to_device(np.zeros((4, 4), np.float32)) for _ in range(2))  # X, Y
    i64 = cuda.to_device(np.zeros(16, np.int64))
    f64 = cuda.to_device(np.zeros(16))
    lay = cuda.to_device(np.zeros((3, 8), np.int64))
    full = (args[0], args[1], args[2], args[3], args[4], args[5], args[6], i64, args[7], 16,
            lay, 4, True, 0, 1, 2, 3, 4, 5, 6, f64, 7, True, f64)
    reps = 20 if quick else 2000
    result = {}
    for name, kernel, kargs in (("empty_kernel", empty, ()), ("fused_epoch_args", many, full)):
        launcher = config.launch(kernel, 1, 32)
        launcher(*kargs)
        _sync()
        t = time.perf_counter()
        done = 0
        while done < reps and not deadline.over():
            for _ in range(10):
                launcher(*kargs)
            done += 10
        _sync()
        result[f"{name}_us"] = (time.perf_counter() - t) / max(done, 1) * 1e6
        t = time.perf_counter()
        for _ in range(max(5, done // 20)):
            launcher(*kargs)
            _sync()
        result[f"{name}_synced_us"] = (time.perf_counter() - t) / max(5, done // 20) * 1e6
        result[f"{name}_launches"] = done
        progress(f"launch_overhead {name}: {result[f'{name}_us']:.1f} us per launch")
    return {"status": "ok", **result}


# -- (d) per-layer kernels ------------------------------------------------------------------------

def _torch_cuda():
    """torch where it has a GPU to run on (not under the simulator), else None."""
    from fastbp.kernels import cuda_config as config
    if config.SIMULATOR:
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def step_layers(quick, deadline):
    from fastbp.kernels import cuda as ck, cuda_config as config, cuda_layers as cl
    from fastbp.kernels.cuda_config import cdiv
    sizes, n = ([784, 512, 512, 10], 1024) if not quick else ([16, 8, 8, 4], 8)
    arrays = EpochArrays(sizes, ["sigmoid", "sigmoid", "softmax"], n, n, seed=8)
    net = ck._net(arrays.net.sizes, arrays.net.act_codes)
    units = sum(sizes)
    A = ck.to_device(np.random.default_rng(0).random(n * units).astype(np.float32))
    Dl = ck.to_device(np.random.default_rng(1).random(n * units).astype(np.float32) * 0.01)
    params = ck.to_device(arrays.net.params)
    grad = ck.to_device(np.zeros(arrays.net.n_params, np.float32))
    t, R = config.TILE, cl.R
    tile_bytes = cl._tile_bytes(A)
    torch = _torch_cuda()
    result = {"net": "-".join(map(str, sizes)), "batch_size": n, "kernels": []}
    if torch is None:
        result["torch"] = "skipped: torch with a CUDA GPU is not available here"
    else:
        torch.backends.cuda.matmul.allow_tf32 = False  # full float32, as fastbp
    reps = 3 if quick else 50

    def timed(run):
        run()
        _sync()
        count, start = 0, time.perf_counter()
        while count < reps and not deadline.over():
            run()
            count += 1
        _sync()
        return (time.perf_counter() - start) / max(count, 1)

    def torch_timed(a, b):
        c = torch.matmul(a, b)
        torch.cuda.synchronize()
        count, start = 0, time.perf_counter()
        while count < reps and not deadline.over():
            c = torch.matmul(a, b)
            count += 1
        torch.cuda.synchronize()
        del c
        return (time.perf_counter() - start) / max(count, 1)

    for m in range(1, len(sizes)):
        n_in, n_out, code = sizes[m - 1], sizes[m], int(net.acts[m - 1])
        jobs = [("forward", 2 * n * n_in * n_out, lambda m=m, n_in=n_in, n_out=n_out, code=code:
                 config.launch(cl._forward_layer, (cdiv(n_out, t * R), cdiv(n, t * R)), (t, t),
                               tile_bytes)(A, params, net.w[m], net.block(m - 1, n),
                                           net.block(m, n), n, n_in, n_out, code),
                 (n, n_in, n_out)),
                ("gradient", 2 * n * n_out * (n_in + 1), lambda m=m, n_in=n_in, n_out=n_out:
                 config.launch(cl._grad_layer, (cdiv(n_in + 1, t * R), cdiv(n_out, t * R), 1),
                               (t, t), tile_bytes)(grad, Dl, A, net.w[m], 0, net.block(m, n),
                                                   net.block(m - 1, n), n, n, n_in, n_out,
                                                   False),
                 (n_out, n, n_in))]
        if m < len(sizes) - 1:
            n_next = sizes[m + 1]
            jobs.append(("delta", 2 * n * n_out * n_next, lambda m=m, n_out=n_out, n_next=n_next,
                         code=code: config.launch(cl._delta_layer,
                                                  (cdiv(n_out, t * R), cdiv(n, t * R)), (t, t),
                                                  tile_bytes)(
                             Dl, A, params, net.w[m + 1], net.block(m, n), net.block(m + 1, n),
                             n, n_out, n_next, code),
                         (n, n_next, n_out)))
        for kind, flop, run, (p, q, r) in jobs:
            if deadline.over():
                break
            seconds = timed(run)
            row = {"layer": m, "kernel": kind, "shape": [p, q, r], "us": seconds * 1e6,
                   "tflops": flop / seconds / 1e12}
            if torch is not None:
                a = torch.rand(p, q, device="cuda")
                b = torch.rand(q, r, device="cuda")
                ts = torch_timed(a, b)
                row["torch_us"], row["torch_tflops"] = ts * 1e6, 2 * p * q * r / ts / 1e12
                row["fraction_of_torch"] = row["tflops"] / row["torch_tflops"]
            result["kernels"].append(row)
            progress(f"layers {kind} {m}: {row['tflops']:.3f} TFLOP/s"
                     + (f" (torch {row['torch_tflops']:.2f})" if "torch_tflops" in row else ""))
    total = sum(r["us"] for r in result["kernels"])
    flop = sum(2 * int(np.prod(r["shape"])) for r in result["kernels"])
    result["all_kernels_tflops"] = flop / (total * 1e-6) / 1e12 if total else None
    if torch is not None:
        total_t = sum(r["torch_us"] for r in result["kernels"])
        result["all_torch_tflops"] = flop / (total_t * 1e-6) / 1e12
    return {"status": "ok", **result}


# -- (e) the sweep --------------------------------------------------------------------------------

def _vmap_ensemble(torch, K, sizes, n_steps, batch, lr, deadline):
    """model-samples/s of K torch models trained as one vmap(grad) ensemble, every model
    on the same batches, a plain SGD step, eagerly."""
    import copy
    from torch.func import functional_call, grad, stack_module_state, vmap

    def make():
        return torch.nn.Sequential(torch.nn.Linear(sizes[0], sizes[1]), torch.nn.Tanh(),
                                   torch.nn.Linear(sizes[1], sizes[2])).cuda()
    models = [make() for _ in range(K)]
    params, buffers = stack_module_state(models)
    params = {k: v.detach() for k, v in params.items()}
    base = copy.deepcopy(models[0]).to("meta")

    def loss(p, b, x, y):
        return torch.nn.functional.cross_entropy(functional_call(base, (p, b), (x,)), y)
    step_grads = vmap(grad(loss), in_dims=(0, 0, None, None))
    X = torch.randn(n_steps * batch, sizes[0], device="cuda")
    y = torch.randint(0, sizes[-1], (n_steps * batch,), device="cuda")
    keys = list(params)
    plist = [params[k] for k in keys]

    def steps(count):
        for i in range(count):
            x, t = X[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch]
            g = step_grads(params, buffers, x, t)
            torch._foreach_add_(plist, [g[k] for k in keys], alpha=-lr)
    steps(min(10, n_steps))
    torch.cuda.synchronize()
    start, done = time.perf_counter(), 0
    while done < n_steps and not deadline.over():
        chunk = min(25, n_steps - done)
        steps(chunk)
        done += chunk
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return K * batch * done / seconds, done


def step_sweep(quick, deadline):
    from fastbp.kernels import cuda as ck, loop
    import numba
    sizes, acts, batch = ([64, 32, 10] if not quick else [8, 6, 3]), ["tanh", "softmax"], 16
    K, n = (1024, 8192) if not quick else (3, 8)
    if quick:
        batch = 4
    P = sum(o * (i + 1) for i, o in zip(sizes[:-1], sizes[1:]))
    result = {"net": "-".join(map(str, sizes)), "batch_size": batch, "models": K,
              "samples_per_model": n, "flop_per_sample": 6 * P}
    progress(f"sweep: {K} models of {result['net']} on {n} samples each, batches of {batch}")
    arrays = EpochArrays(sizes, acts, n, batch, K=K, lr=0.01, seed=9)
    host_arrays = {k: getattr(arrays, k).copy() for k in ("params", "state", "steps", "stats")}
    arrays.device(ck, ("params", "state", "steps", "stats", "X", "Y", "order"))

    def run():
        arrays.sweep_epoch(ck)
        _sync()
    rate, reps = _rate(run, K * n, Deadline(deadline.left() * 0.45),
                       max_reps=1 if quick else 10)
    result["fastbp"] = {"model_samples_per_s": rate, "gflops": rate * 6 * P / 1e9,
                        "epochs_timed": reps, "launch": ck.last_sweep_launch()}
    progress(f"sweep cuda: {rate:,.0f} model-samples/s")
    # As fastbp.Sweep calls it today: host arrays, copied to the GPU and back every epoch.
    host = EpochArrays(sizes, acts, n, batch, K=K, lr=0.01, seed=9)
    for k, v in host_arrays.items():
        setattr(host, k, v)
    t = time.perf_counter()
    host.sweep_epoch(ck)
    result["fastbp"]["host_arrays_model_samples_per_s"] = K * n / (time.perf_counter() - t)

    torch = _torch_cuda()
    if torch is None:
        result["torch_vmap"] = "skipped: torch with a CUDA GPU is not available here"
    elif deadline.over():
        result["torch_vmap"] = "skipped: out of time"
    else:
        try:
            t_rate, t_steps = _vmap_ensemble(torch, K, sizes, 400, batch, 0.01,
                                             Deadline(deadline.left() * 0.5))
            result["torch_vmap"] = {"model_samples_per_s": t_rate, "steps_timed": t_steps,
                                    "torch": torch.__version__}
            result["cuda_over_torch_vmap"] = rate / t_rate
            progress(f"sweep torch vmap: {t_rate:,.0f} model-samples/s")
        except Exception as exc:
            result["torch_vmap"] = {"error": repr(exc), "trace": traceback.format_exc()[-1500:]}

    # The CPU for scale: loop.sweep_epoch on a few models, one per thread.
    k_cpu = max(2, numba.get_num_threads()) if not quick else 2
    n_cpu = min(n, 2048) if not quick else n
    cpu = EpochArrays(sizes, acts, n_cpu, batch, K=k_cpu, lr=0.01, seed=9)
    cpu_rate, cpu_reps = _rate(lambda: cpu.sweep_epoch(loop), k_cpu * n_cpu,
                               Deadline(max(1.0, deadline.left())), max_reps=1 if quick else 3)
    result["loop_cpu"] = {"models": k_cpu, "samples_per_model": n_cpu,
                          "threads": numba.get_num_threads(), "model_samples_per_s": cpu_rate}
    result["cuda_over_loop_cpu"] = rate / cpu_rate
    progress(f"sweep loop CPU ({k_cpu} models): {cpu_rate:,.0f} model-samples/s")
    return {"status": "ok", **result}


# -- driver ---------------------------------------------------------------------------------------

RUNNERS = {"correctness": step_correctness, "fused_epoch": step_fused_epoch,
           "launch_overhead": step_launch_overhead, "layers": step_layers, "sweep": step_sweep}


def _quick_tunables():
    """Under the simulator, blocks as small as the tests' (each thread is a Python thread)."""
    from fastbp.kernels import cuda_config as config
    if config.SIMULATOR:
        config.THREADS_PER_BLOCK, config.TILE = 4, 4
        config.FUSED_THREADS, config.SWEEP_THREADS = 8, 8
        sys.setswitchinterval(1e-4)


def _watchdog(report, seconds):
    """Write what there is and leave, before the slot's wall limit, whatever is running."""
    def fire():
        report.data["watchdog"] = f"stopped after {seconds:.0f} s"
        for step in report.data["steps"].values():
            if step.get("status") == "running":
                step["status"] = "timeout"
        with contextlib.suppress(Exception):
            report.write()
        print(f"progress: watchdog: out of time after {seconds:.0f} s", flush=True)
        os._exit(3)
    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return timer


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="where to write the JSON report")
    parser.add_argument("--quick", action="store_true",
                        help="a reduced version of every step (CI, under the simulator)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for the whole run (default 460; --quick 240)")
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    args = parser.parse_args(argv)
    budget = args.budget or (240.0 if args.quick else 460.0)
    report = Report(args.out, args.quick)
    watchdog = _watchdog(report, budget + 10)
    progress(f"device_check: budget {budget:.0f} s, steps {' '.join(args.steps)}")
    try:
        report.data["environment"] = environment()
    except Exception as exc:
        report.data["environment"] = {"error": repr(exc)}
    env = report.data["environment"]
    progress(f"environment: {env.get('device')}, numba {env.get('numba')}, numba-cuda "
             f"{env.get('numba_cuda')}, torch {env.get('torch')}")
    report.write()
    if args.quick:
        _quick_tunables()
    from fastbp.kernels import cuda as ck
    from fastbp.kernels import cuda_config
    # Timing single networks on the GPU is the point here, not a mistake to warn about.
    warnings.filterwarnings("ignore", category=cuda_config.SlowOnGPUWarning)
    available = True
    try:
        ck.require()
    except RuntimeError as exc:
        available = False
        reason = str(exc)
    started = time.perf_counter()
    for name in STEPS:
        if name not in args.steps:
            report.data["steps"][name] = {"status": "skipped", "seconds": 0.0,
                                          "reason": "not asked for (--steps)"}
            continue
        left = budget - (time.perf_counter() - started)
        later = sum(SHARES[s] for s in STEPS[STEPS.index(name):] if s in args.steps)
        step_budget = max(1.0, left * SHARES[name] / later)
        entry = report.data["steps"][name] = {"status": "running", "budget_s": step_budget}
        report.write()
        progress(f"step {name} (budget {step_budget:.0f} s)")
        t = time.perf_counter()
        if not available:
            entry.update(status="skipped", reason=reason)
        else:
            try:
                entry.update(RUNNERS[name](args.quick, Deadline(step_budget)))
            except Exception as exc:
                entry.update(status="error", error=repr(exc),
                             trace=traceback.format_exc()[-3000:])
        entry["seconds"] = round(time.perf_counter() - t, 2)
        progress(f"step {name}: {entry['status']} in {entry['seconds']:.1f} s")
        report.write()
    watchdog.cancel()
    report.write(finished=True)
    failed = [n for n, s in report.data["steps"].items() if s["status"] in ("error", "failed")]
    progress(f"done in {report.data['seconds']:.0f} s; report in {args.out}"
             + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""``fastbp bench --suite fann-data | tiny | sweep``: fastbp against its rivals on the work
FANN's users and sweep users do, side by side in one process, reported as ratios.

- ``fann-data``: FANN's own benchmark sets (benchmarks/fann-data/), a d-32-k net (tanh
  hidden, sigmoid output, mse), full-batch iRprop- for 300 epochs from the same initial
  weights: ``fastbp.Trainer(optimizer="rprop", schedule="fullbatch")`` against
  ``fann_train_on_data`` with FANN_TRAIN_RPROP and the same constants. The final MSE of
  both is reported beside the times: a speed ratio between runs that do different work
  would mean nothing.
- ``tiny``: the fixed cost of tiny nets: 4-sample XOR (2-2-1, 2-4-1) for 10^5 full-batch
  epochs (microseconds per epoch), and 2-32-1 online and full batch (nanoseconds per
  sample), against FANN (FANN_TRAIN_BATCH / FANN_TRAIN_INCREMENTAL in one
  ``fann_train_on_data`` call, as its users train).
- ``sweep``: K = 16 models of 64-32-10 (learning rate x seed) on the bundled digits,
  ``fastbp.Sweep.fit`` at ``--threads`` threads against the same 16 models trained one
  after another by ``Trainer.fit`` (the rate a single model trains at) and
  against scikit-learn's ``GridSearchCV(MLPClassifier(solver="sgd"), n_jobs=-1)`` over the
  same grid, epochs and batch size on one train/validation split.

Every timing is a whole training call as a user makes it (``Trainer.fit(X, y, epochs=E)``,
``Sweep(...).fit``, ``fann_train_on_data``, ``GridSearchCV.fit``); setting up networks
and data is not timed, compilation never is (a warm-up run comes first). Contenders
alternate, each timed ``--repeat`` times; the best counts, so a noisy neighbour hurts all
alike.
"""
import itertools
import math
import os
import pathlib
import platform
import time
import warnings

import numpy as np

from fastbp.bench import settle
from fastbp.datasets import load_fann

SUITES = ("nets", "fann-data", "tiny", "sweep")
FANN_SETS = ("diabetes", "robot", "thyroid", "two-spiral")
# iRprop-'s constants: fastbp.Trainer's defaults (etas, step_sizes) and FANN's
# delta_zero = 0.1 as the initial step; FannNet maps them onto FANN's settings.
RPROP = dict(etas=(0.5, 1.2), step_sizes=(1e-6, 50.0), initial_step=0.1)
FANN_EPOCHS = 300
XOR_EPOCHS = 100_000
SWEEP_EPOCHS = 10
SWEEP_GRID = {"learning_rate": [0.01, 0.03, 0.1, 0.3], "seed": [0, 1, 2, 3]}
TINY_SAMPLES = 1024  # samples of the 2-32-1 rows


def add_options(parser):
    """The suite options of ``fastbp bench`` (compare.add_options adds the rest)."""
    parser.add_argument("--suite", default="nets", choices=SUITES,
                        help="nets: the table of networks and schedules (default); fann-data: "
                        "FANN's benchmark sets, iRprop-, against FANN; tiny: XOR and 2-32-1 "
                        "against FANN; sweep: fastbp.Sweep against its models fit one by "
                        "one and against scikit-learn")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"epochs per timed run: fann-data {FANN_EPOCHS}, tiny "
                        f"{XOR_EPOCHS} (XOR rows; 2-32-1 rows run epochs/500), sweep "
                        f"{SWEEP_EPOCHS} (default)")
    parser.add_argument("--sets", nargs="+", default=list(FANN_SETS), metavar="NAME",
                        help="fann-data: the sets to run (default: %(default)s)")
    parser.add_argument("--sklearn-jobs", type=int, default=-1, metavar="N",
                        help="sweep: GridSearchCV's n_jobs (default -1: every CPU; 0 leaves "
                        "scikit-learn out)")
    parser.add_argument("--fann-dir", default=None, metavar="DIR",
                        help="fann-data: folder of FANN .train files (default: the "
                        "repository's benchmarks/fann-data)")


# -- machine -------------------------------------------------------------------------


def _cpuinfo():
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), set()
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                  if line.startswith("model name")), platform.machine())
    flags = next((set(line.split(":", 1)[1].split()) for line in text.splitlines()
                  if line.startswith("flags")), set())
    return model, flags


def _width(features):
    """The widest x86 vector ISA in a set of feature names (cpuinfo flags or LLVM's)."""
    if "avx512f" in features:
        return "AVX-512"
    if "avx2" in features:
        return "AVX2"
    return "SSE or other"


def _dot(a, b):
    s = a[0] - a[0]
    for i in range(a.size):
        s += a[i] * b[i]
    return s


def vector_bits():
    """Width in bits of the vectors Numba's code uses here: a float32 dot product loop is
    compiled (not cached) and its assembly read. On AVX-512 machines LLVM often prefers
    256-bit vectors (its ``prefer-256-bit`` tuning, e.g. for Skylake-X to Rocket Lake), so
    the ISA alone does not say the width."""
    import re

    import numba

    from fastbp import _config
    # The kernels' flags, but compiled afresh: code loaded from Numba's cache has no
    # assembly to read.
    JIT = dict(_config.JIT, cache=False)
    dot = numba.njit(**JIT)(_dot)
    a = np.ones(64, np.float32)
    dot(a, a)
    asm = dot.inspect_asm(dot.signatures[0])
    for bits, register in ((512, "zmm"), (256, "ymm"), (128, "xmm")):
        if re.search(register + r"\d", asm):
            return bits
    return 0


def numba_target():
    """(cpu name, vector ISA, where they come from) of the code Numba generates."""
    import llvmlite.binding as ll
    import numba
    name = numba.config.CPU_NAME or ll.get_host_cpu_name()
    if numba.config.CPU_FEATURES is not None:
        flat, source = numba.config.CPU_FEATURES, "NUMBA_CPU_FEATURES"
    else:
        flat, source = ll.get_host_cpu_features().flatten(), "host features"
    enabled = {f[1:] for f in flat.split(",") if f.startswith("+")}
    if numba.config.CPU_NAME:
        source = f"NUMBA_CPU_NAME, {source}"
    return name, _width(enabled), source


def avx2_features():
    """The host's LLVM feature string with every AVX-512 (and AVX10, AMX) feature turned
    off: ``NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES=<this>`` makes Numba emit AVX2 code
    on an AVX-512 machine."""
    import llvmlite.binding as ll
    out = []
    for f in ll.get_host_cpu_features().flatten().split(","):
        if f[1:].startswith(("avx512", "avx10", "amx", "evex512")):
            f = "-" + f[1:]
        out.append(f)
    return ",".join(out)


def zmm_features():
    """The host's LLVM feature string plus ``-prefer-256-bit``: with
    ``NUMBA_CPU_FEATURES=<this>`` an AVX-512 machine whose LLVM tuning prefers 256-bit
    vectors gets 512-bit (zmm) ones."""
    import llvmlite.binding as ll
    return ll.get_host_cpu_features().flatten() + ",-prefer-256-bit"


def _version(distribution):
    """An installed distribution's version (without importing it), or None."""
    from importlib import metadata
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _fann_version():
    try:
        from fastbp.bench import fann
        fann.load()
    except ImportError:
        return None
    import subprocess
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "libfann2"],
                             capture_output=True, text=True, timeout=10)
        return f"2.2 (libfann2 {out.stdout.strip()})" if out.returncode == 0 else "2.2"
    except (OSError, subprocess.SubprocessError):
        return "2.2"


def machine_info(threads, dtype="float32"):
    """Lines describing the machine, the code Numba generates, threads and versions."""
    import numba
    model, flags = _cpuinfo()
    name, width, source = numba_target()
    versions = [f"Python {platform.python_version()}"] + [
        f"{label} {v}" for label, v in (
            ("fastbp", _version("fastbp")), ("numpy", np.__version__),
            ("numba", numba.__version__), ("FANN", _fann_version()),
            ("torch", _version("torch")), ("scikit-learn", _version("scikit-learn"))) if v]
    return [f"CPU: {model}, {os.cpu_count()} logical CPUs, {_width(flags)} "
            f"(/proc/cpuinfo flags); Numba code: {name}, {width} ({source}), "
            f"{vector_bits()}-bit vectors",
            f"threads {threads}; dtype {dtype}; "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            ", ".join(versions)]


# -- data ----------------------------------------------------------------------------


def fann_data_dir():
    """benchmarks/fann-data beside the fastbp package (a source checkout)."""
    return pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "fann-data"


def _fann_set(name, directory=None, dtype="float32"):
    directory = pathlib.Path(directory) if directory else fann_data_dir()
    path = directory / f"{name}.train"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; pass --fann-dir, the folder of FANN's "
                                f".train files (benchmarks/fann-data in a source checkout)")
    return load_fann(path, dtype)


def xor_data(dtype="float32"):
    """FANN's XOR inputs (-1/1) with 0/1 targets (a sigmoid output)."""
    X = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]], dtype)
    Y = np.array([[0], [1], [1], [0]], dtype)
    return X, Y


def quadrants(n, dtype="float32", seed=0):
    """n points uniform in [-1, 1]^2, target 1 where x0 * x1 > 0 (a 2-input problem)."""
    X = np.random.default_rng(seed).uniform(-1, 1, (n, 2)).astype(dtype)
    return X, (X[:, :1] * X[:, 1:] > 0).astype(dtype)


# -- contenders ----------------------------------------------------------------------
# A trial(epochs) builds a fresh copy of a contender from net0 (not timed), trains it for
# `epochs` epochs in one call (timed) and returns (seconds, outputs on X after training).


def fann_style_network(sizes, dtype="float32", seed=0):
    """FANN's usual net: tanh hidden layers, sigmoid outputs, mse."""
    import fastbp
    return fastbp.Network(sizes, activations=["tanh"] * (len(sizes) - 2) + ["sigmoid"],
                          loss="mse", dtype=dtype, seed=seed)


def fastbp_trial(net0, X, Y, **trainer_options):
    """fastbp's contender: ``Trainer(copy of net0, **trainer_options).fit(X, Y, epochs)``,
    the whole call timed, as a user makes it."""
    import fastbp

    def trial(epochs):
        net = fastbp.Network(net0.layer_sizes, activations=net0.activations,
                             loss=net0.loss_name, dtype=net0.dtype.name)
        net.params[...] = net0.params
        trainer = fastbp.Trainer(net, **trainer_options)
        start = time.perf_counter()
        trainer.fit(X, Y, epochs=epochs)
        return time.perf_counter() - start, net.forward(X)
    trial.initial = lambda: net0.forward(X)
    return trial


def fann_trial(net0, X, Y, algorithm, learning_rate=0.7, rprop=None):
    """FANN's contender: a FannNet with net0's weights, trained by one fann_train_on_data
    call (every epoch in C, samples in order)."""
    from fastbp.bench import fann
    fann.load(net0.dtype)  # ImportError now
    hidden = net0.activations[0] if len(net0.activations) > 1 else "sigmoid"

    def make():
        fnet = fann.FannNet(net0.layer_sizes, dtype=net0.dtype, learning_rate=learning_rate,
                            algorithm=algorithm, hidden=hidden, output=net0.activations[-1],
                            rprop=rprop)
        fnet.set_params(net0.weights, net0.biases)
        return fnet

    def trial(epochs):
        with make() as fnet:
            fnet.train_on_data(X, Y, epochs)
            return fnet.seconds, fnet.run(X)

    def initial():
        with make() as fnet:
            return fnet.run(X)
    trial.initial = initial
    return trial


def best_of(trials, epochs, repeat, warmup_epochs=2):
    """{name: (best seconds, outputs of the last trial)}: one warm-up run each (compiles),
    then ``repeat`` rounds, the contenders alternating within each round."""
    for trial in trials.values():
        trial(warmup_epochs)
    best = {name: (math.inf, None) for name in trials}
    for _ in range(repeat):
        for name, trial in trials.items():
            if len(trials) > 1:
                settle()
            seconds, out = trial(epochs)
            best[name] = (min(best[name][0], seconds), out)
    return best


def mse(out, Y):
    """FANN's MSE: the mean of (y - a)^2 over samples and outputs."""
    return float(np.mean((np.asarray(out, np.float64) - Y) ** 2))


def _check_same_start(trials, Y, tol=1e-4):
    """Every contender's untrained network gives net0's outputs (same initial weights)."""
    outs = {name: trial.initial() for name, trial in trials.items()}
    first = next(iter(outs.values()))
    for name, out in outs.items():
        if not np.allclose(out, first, rtol=tol, atol=tol):
            raise RuntimeError(f"{name} does not start from the same weights")
    return mse(first, Y)


def _geomean(values):
    values = [v for v in values if v > 0 and math.isfinite(v)]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else math.nan


# -- fann-data -----------------------------------------------------------------------


def run_fann_data(sets=FANN_SETS, epochs=FANN_EPOCHS, repeat=3, dtype="float32",
                  directory=None, out=print):
    """Full-batch iRprop- on FANN's sets, fastbp against FANN; returns the rows."""
    from fastbp.bench import fann
    rows = []
    out(f"{'set':>10} {'net':>9} {'n':>5} | {'fastbp s':>9} {'FANN s':>9} {'FANN/fastbp':>11}"
        f" | {'MSE start':>9} {'fastbp':>9} {'FANN':>9}")
    for name in sets:
        X, Y = _fann_set(name, directory, dtype)
        sizes = [X.shape[1], 32, Y.shape[1]]
        net0 = fann_style_network(sizes, dtype)
        trials = {
            "fastbp": fastbp_trial(net0, X, Y, schedule="fullbatch", optimizer="rprop",
                                   learning_rate=RPROP["initial_step"], etas=RPROP["etas"],
                                   step_sizes=RPROP["step_sizes"], shuffle=False, seed=0),
            "fann": fann_trial(net0, X, Y, fann.FANN_TRAIN_RPROP, rprop=RPROP),
        }
        start_mse = _check_same_start(trials, Y)
        best = best_of(trials, epochs, repeat)
        row = dict(set=name, net="-".join(map(str, sizes)), n=len(X), epochs=epochs,
                   seconds={k: v[0] for k, v in best.items()},
                   mse={k: mse(v[1], Y) for k, v in best.items()}, mse_start=start_mse)
        row["ratio"] = row["seconds"]["fann"] / row["seconds"]["fastbp"]
        rows.append(row)
        out(f"{name:>10} {row['net']:>9} {row['n']:>5} | {row['seconds']['fastbp']:9.4f} "
            f"{row['seconds']['fann']:9.4f} {row['ratio']:10.2f}x | {start_mse:9.5f} "
            f"{row['mse']['fastbp']:9.5f} {row['mse']['fann']:9.5f}")
    out(f"geometric mean FANN/fastbp over {len(rows)} sets: "
        f"{_geomean([r['ratio'] for r in rows]):.2f}x  ({epochs} epochs, best of {repeat})")
    return rows


# -- tiny ----------------------------------------------------------------------------


def tiny_cases(xor_epochs=XOR_EPOCHS, dtype="float32"):
    """(label, sizes, X, Y, schedule, epochs, unit) of the tiny suite's rows."""
    X, Y = xor_data(dtype)
    Xq, Yq = quadrants(TINY_SAMPLES, dtype)
    few = max(2, xor_epochs // 500)
    return [("XOR 2-2-1", [2, 2, 1], X, Y, "fullbatch", xor_epochs, "epoch"),
            ("XOR 2-4-1", [2, 4, 1], X, Y, "fullbatch", xor_epochs, "epoch"),
            ("2-32-1", [2, 32, 1], Xq, Yq, "online", few, "sample"),
            ("2-32-1", [2, 32, 1], Xq, Yq, "fullbatch", few, "sample")]


def run_tiny(xor_epochs=XOR_EPOCHS, repeat=3, dtype="float32", out=print,
             learning_rate=0.7):
    """Per-epoch and per-sample cost of tiny nets, fastbp against FANN; returns the rows.

    Plain gradient descent at FANN's default learning rate 0.7, tanh hidden, sigmoid
    output, mse; no shuffling (fann_train_on_data keeps the data's order).
    """
    from fastbp.bench import fann
    rows = []
    out(f"{'case':>10} {'schedule':>9} {'epochs':>7} | {'fastbp':>10} {'FANN':>10} "
        f"{'FANN/fastbp':>11} | {'MSE fastbp':>10} {'FANN':>8}")
    for label, sizes, X, Y, schedule, epochs, unit in tiny_cases(xor_epochs, dtype):
        net0 = fann_style_network(sizes, dtype)
        algorithm = {"online": fann.FANN_TRAIN_INCREMENTAL,
                     "fullbatch": fann.FANN_TRAIN_BATCH}[schedule]
        trials = {"fastbp": fastbp_trial(net0, X, Y, schedule=schedule,
                                         learning_rate=learning_rate, shuffle=False, seed=0),
                  "fann": fann_trial(net0, X, Y, algorithm, learning_rate=learning_rate)}
        _check_same_start(trials, Y)
        best = best_of(trials, epochs, repeat)
        per = epochs * (len(X) if unit == "sample" else 1)
        scale, what = (1e6, "us/epoch") if unit == "epoch" else (1e9, "ns/sample")
        cost = {k: v[0] / per * scale for k, v in best.items()}
        row = dict(case=label, schedule=schedule, epochs=epochs, n=len(X), unit=what,
                   cost=cost, ratio=cost["fann"] / cost["fastbp"],
                   mse={k: mse(v[1], Y) for k, v in best.items()})
        rows.append(row)
        out(f"{label:>10} {schedule:>9} {epochs:>7} | {cost['fastbp']:7.2f} {what[:2]} "
            f"{cost['fann']:7.2f} {what[:2]} {row['ratio']:10.2f}x | "
            f"{row['mse']['fastbp']:10.5f} {row['mse']['fann']:8.5f}")
    out(f"us = microseconds per epoch ({len(xor_data()[0])} samples), ns = nanoseconds per "
        f"sample ({TINY_SAMPLES} samples); best of {repeat}")
    return rows


# -- sweep ---------------------------------------------------------------------------


def sweep_data(n=None, dtype="float32"):
    """The bundled digits (1797 x 64, 10 classes), or the first n of them, and one fixed
    80/20 train/validation split."""
    from fastbp.datasets import load_digits
    X, y = load_digits(dtype)
    if n is not None:
        X, y = X[:n], y[:n]
    order = np.random.default_rng(0).permutation(len(X))
    n_val = len(X) // 5
    return X, y, np.sort(order[n_val:]), np.sort(order[:n_val])


def _sweep_options(schedule):
    if schedule == "online":
        return dict(schedule="online")
    return dict(schedule="minibatch", batch_size=int(schedule))


def fastbp_sweep(X, y, train, val, schedule, grid, threads):
    """Sweep(...).fit on the training rows, then every model's accuracy on the validation
    rows; returns (seconds, best validation accuracy)."""
    import fastbp

    def trial(epochs):
        start = time.perf_counter()
        sweep = fastbp.Sweep([X.shape[1], 32, 10], activations=["tanh", "softmax"],
                             loss="cross_entropy", threads=threads, grid=grid,
                             **_sweep_options(schedule))
        result = sweep.fit(X[train], y[train], epochs=epochs)
        scores = [np.mean(net.forward(X[val]).argmax(axis=1) == y[val])
                  for net in result.networks]
        return time.perf_counter() - start, float(max(scores))
    return trial


def fastbp_one_by_one(X, y, train, val, schedule, grid, threads):
    """The sweep's work done one model after another, as without Sweep: for each setting
    a Network and a Trainer, Trainer.fit, then the validation accuracy; returns
    (seconds, best validation accuracy) -- the same accuracy as the sweep's, whose models
    end bit for bit where these fits end."""
    import fastbp
    settings = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]

    def trial(epochs):
        start = time.perf_counter()
        scores = []
        for setting in settings:
            kw = dict(setting)
            seed = kw.pop("seed", None)
            net = fastbp.Network([X.shape[1], 32, 10], activations=["tanh", "softmax"],
                                 loss="cross_entropy", seed=seed)
            trainer = fastbp.Trainer(net, seed=seed, threads=threads,
                                     **_sweep_options(schedule), **kw)
            trainer.fit(X[train], y[train], epochs=epochs)
            scores.append(np.mean(net.forward(X[val]).argmax(axis=1) == y[val]))
        return time.perf_counter() - start, float(max(scores))
    return trial


def sklearn_grid(X, y, train, val, schedule, grid, n_jobs=-1):
    """GridSearchCV(MLPClassifier(...)) over the same grid on one split: each model trained
    once for exactly ``epochs`` epochs (no early stopping, no momentum, no L2, constant
    rate, shuffled), then scored on the validation rows; returns (seconds, best accuracy)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV
    from sklearn.neural_network import MLPClassifier
    sk_grid = {"learning_rate_init": grid["learning_rate"], "random_state": grid["seed"]}
    batch = 1 if schedule == "online" else int(schedule)

    def trial(epochs):
        mlp = MLPClassifier(hidden_layer_sizes=(32,), activation="tanh", solver="sgd",
                            batch_size=batch, learning_rate="constant", momentum=0.0,
                            nesterovs_momentum=False, alpha=0.0, shuffle=True,
                            max_iter=epochs, n_iter_no_change=epochs + 1,
                            early_stopping=False)
        search = GridSearchCV(mlp, sk_grid, cv=[(train, val)], n_jobs=n_jobs, refit=False)
        start = time.perf_counter()
        with warnings.catch_warnings():  # max_iter reached: ConvergenceWarning, as intended
            warnings.simplefilter("ignore", ConvergenceWarning)
            search.fit(X, y)
        return time.perf_counter() - start, float(np.max(search.cv_results_["mean_test_score"]))
    return trial


def run_sweep(schedules=("online", "16"), epochs=SWEEP_EPOCHS, threads=1, repeat=3,
              grid=None, n=None, sklearn_jobs=-1, out=print):
    """fastbp.Sweep against its models' Trainer.fit one by one and against scikit-learn
    (when installed; ``sklearn_jobs=None`` leaves it out); returns the rows."""
    grid = grid or SWEEP_GRID
    X, y, train, val = sweep_data(n)
    K = math.prod(len(v) for v in grid.values())
    rows = []
    try:
        import sklearn  # noqa: F401
        have_sklearn = sklearn_jobs is not None
    except ImportError:
        have_sklearn = False
    jobs = None
    if have_sklearn:
        import joblib
        jobs = joblib.cpu_count() if sklearn_jobs == -1 else sklearn_jobs
    out(f"K = {K} models of 64-32-10 (tanh, softmax + cross-entropy), grid {grid}; "
        f"{len(train)} training samples (digits), {epochs} epochs; rates in model-epochs/s")
    out(f"{'schedule':>8} | {'1 by 1':>9} {'sweep':>9} {'sklearn':>9} | {'sweep/1by1':>10} "
        f"{'efficiency':>10} {'sweep/sklearn':>13} | {'best val acc: 1by1':>18} {'sweep':>6} "
        f"{'sklearn':>7}")
    for schedule in schedules:
        trials = {"one by one": fastbp_one_by_one(X, y, train, val, schedule, grid, threads),
                  "sweep": fastbp_sweep(X, y, train, val, schedule, grid, threads)}
        if have_sklearn:
            trials["sklearn"] = sklearn_grid(X, y, train, val, schedule, grid, sklearn_jobs)
        best = best_of(trials, epochs, repeat, warmup_epochs=1)
        rate = {"one by one": K * epochs / best["one by one"][0],
                "sweep": K * epochs / best["sweep"][0]}
        if have_sklearn:
            rate["sklearn"] = K * epochs / best["sklearn"][0]
        row = dict(schedule=schedule, threads=threads, models=K, epochs=epochs, rate=rate,
                   seconds={k: v[0] for k, v in best.items()},
                   speedup=rate["sweep"] / rate["one by one"],
                   efficiency=rate["sweep"] / (threads * rate["one by one"]),
                   vs_sklearn=rate["sweep"] / rate["sklearn"] if have_sklearn else math.nan,
                   accuracy={k: best[k][1] for k in ("one by one", "sweep", "sklearn")
                             if k in best},
                   sklearn_jobs=jobs)
        rows.append(row)
        sk = f"{rate['sklearn']:9.1f}" if have_sklearn else f"{'-':>9}"
        sk_acc = f"{row['accuracy']['sklearn']:7.3f}" if have_sklearn else f"{'-':>7}"
        vs_sk = f"{row['vs_sklearn']:.1f}x" if have_sklearn else "-"
        out(f"{schedule:>8} | {rate['one by one']:9.1f} {rate['sweep']:9.1f} {sk} | "
            f"{row['speedup']:9.2f}x {row['efficiency']:10.2f} {vs_sk:>13} | "
            f"{row['accuracy']['one by one']:18.3f} {row['accuracy']['sweep']:6.3f} {sk_acc}")
    sk = (f"scikit-learn: GridSearchCV(n_jobs={sklearn_jobs}: {jobs} processes), one "
          f"split, refit=False" if have_sklearn else "scikit-learn: not run")
    out(f"1 by 1: the {K} models one after another, each Network + Trainer.fit + accuracy; "
        f"sweep: Sweep(...).fit + accuracies, at {threads} thread(s); efficiency = sweep rate "
        f"/ ({threads} x 1-by-1 rate); {sk}; best of {repeat}")

    return rows


def main(args):
    """Run the suite named by ``args.suite`` (not "nets": compare.main runs that)."""
    from fastbp.bench.compare import set_threads
    limited = set_threads(args.threads)
    for line in machine_info(args.threads, args.dtype):
        print(line)
    print(f"BLAS threads: {limited}")
    if args.suite in ("fann-data", "tiny"):
        from fastbp.bench import fann
        try:
            fann.load(args.dtype)
        except ImportError as exc:  # the command line reports it in one line
            raise RuntimeError(f"the {args.suite} suite compares against FANN: {exc}") from None
    if args.suite == "fann-data":
        run_fann_data(args.sets, args.epochs or FANN_EPOCHS, args.repeat, args.dtype,
                      args.fann_dir)
    elif args.suite == "tiny":
        run_tiny(args.epochs or XOR_EPOCHS, args.repeat, args.dtype)
    elif args.suite == "sweep":
        run_sweep(args.schedules or ("online", "16"), args.epochs or SWEEP_EPOCHS,
                  args.threads, args.repeat, sklearn_jobs=args.sklearn_jobs or None)
    return 0


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["--avx2-features"]:
        print(avx2_features())
    elif sys.argv[1:] == ["--zmm-features"]:
        print(zmm_features())
    else:
        print("usage: python -m fastbp.bench.suites --avx2-features | --zmm-features\n"
              "(values for NUMBA_CPU_FEATURES; the suites run as fastbp bench --suite)")

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
  same grid, epochs and batch size on one train/validation split. With ``--models K
  ...``: K models at once against PyTorch's vmap ensembling recipe instead
  (``fastbp.bench.ensemble``).

Every timing is a whole training call as a user makes it (``Trainer.fit(X, y, epochs=E)``,
``Sweep(...).fit``, ``fann_train_on_data``, ``GridSearchCV.fit``); setting up networks
and data is not timed, compilation never is (a warm-up run comes first). Contenders
alternate, each timed ``--repeat`` times; the best counts, so a noisy neighbour hurts all
alike (fastbp.bench.harness).

This module holds the suites: their options, data, contenders and tables; ``main`` runs
the one named by ``--suite`` after the machine lines of fastbp.bench.machine.
``python -m fastbp.bench.suites --avx2-features | --zmm-features`` prints that module's
values for NUMBA_CPU_FEATURES (benchmarks/RESULTS.md runs it so).
"""
import itertools
import math
import pathlib
import time
import warnings

import numpy as np

from fastbp.bench.harness import best_of, check_same_start, geomean, mse, set_threads
from fastbp.bench.machine import machine_info
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
    parser.add_argument("--models", type=int, nargs="+", default=None, metavar="K",
                        help="sweep: instead of the grid table, K models of 64-32-10 at "
                        "once, fastbp.Sweep against PyTorch's vmap ensembling recipe, a row "
                        "per K (e.g. 16 64 256 1024; --schedules picks the batch, default 16)")
    parser.add_argument("--fann-dir", default=None, metavar="DIR",
                        help="fann-data: folder of FANN .train files (default: the "
                        "repository's benchmarks/fann-data)")


# -- data ----------------------------------------------------------------------------


def fann_data_dir():
    """benchmarks/fann-data beside the fastbp package (a source checkout)."""
    return pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "fann-data"


def fann_set(name, directory=None, dtype="float32"):
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
# Trials as fastbp.bench.harness defines them: trial(epochs) -> (seconds, outputs on X).


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


def fastbp_against_fann(net0, X, Y, epochs, repeat, fastbp_options, algorithm,
                        **fann_options):
    """fastbp's trial (``Trainer(**fastbp_options)``) against FANN's (``algorithm``,
    ``**fann_options``), both from net0's weights (checked), timed alternating, best of
    ``repeat``: returns (MSE at the start, {contender: best seconds},
    {contender: MSE after training})."""
    trials = {"fastbp": fastbp_trial(net0, X, Y, **fastbp_options),
              "fann": fann_trial(net0, X, Y, algorithm, **fann_options)}
    start_mse = check_same_start(trials, Y)
    best = best_of(trials, epochs, repeat)
    return (start_mse, {k: v[0] for k, v in best.items()},
            {k: mse(v[1], Y) for k, v in best.items()})


# -- fann-data -----------------------------------------------------------------------


def run_fann_data(sets=FANN_SETS, epochs=FANN_EPOCHS, repeat=3, dtype="float32",
                  directory=None, out=print):
    """Full-batch iRprop- on FANN's sets, fastbp against FANN; returns the rows."""
    from fastbp.bench import fann
    rows = []
    out(f"{'set':>10} {'net':>9} {'n':>5} | {'fastbp s':>9} {'FANN s':>9} {'FANN/fastbp':>11}"
        f" | {'MSE start':>9} {'fastbp':>9} {'FANN':>9}")
    for name in sets:
        X, Y = fann_set(name, directory, dtype)
        sizes = [X.shape[1], 32, Y.shape[1]]
        start_mse, seconds, final = fastbp_against_fann(
            fann_style_network(sizes, dtype), X, Y, epochs, repeat,
            dict(schedule="fullbatch", optimizer="rprop", learning_rate=RPROP["initial_step"],
                 etas=RPROP["etas"], step_sizes=RPROP["step_sizes"], shuffle=False, seed=0),
            fann.FANN_TRAIN_RPROP, rprop=RPROP)
        row = dict(set=name, net="-".join(map(str, sizes)), n=len(X), epochs=epochs,
                   seconds=seconds, mse=final, mse_start=start_mse)
        row["ratio"] = seconds["fann"] / seconds["fastbp"]
        rows.append(row)
        out(_fann_data_line(row))
    out(f"geometric mean FANN/fastbp over {len(rows)} sets: "
        f"{geomean([r['ratio'] for r in rows]):.2f}x  ({epochs} epochs, best of {repeat})")
    return rows


def _fann_data_line(row):
    seconds, final = row["seconds"], row["mse"]
    return (f"{row['set']:>10} {row['net']:>9} {row['n']:>5} | {seconds['fastbp']:9.4f} "
            f"{seconds['fann']:9.4f} {row['ratio']:10.2f}x | {row['mse_start']:9.5f} "
            f"{final['fastbp']:9.5f} {final['fann']:9.5f}")


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
        algorithm = {"online": fann.FANN_TRAIN_INCREMENTAL,
                     "fullbatch": fann.FANN_TRAIN_BATCH}[schedule]
        _, seconds, final = fastbp_against_fann(
            fann_style_network(sizes, dtype), X, Y, epochs, repeat,
            dict(schedule=schedule, learning_rate=learning_rate, shuffle=False, seed=0),
            algorithm, learning_rate=learning_rate)
        per = epochs * (len(X) if unit == "sample" else 1)
        scale, what = (1e6, "us/epoch") if unit == "epoch" else (1e9, "ns/sample")
        cost = {k: s / per * scale for k, s in seconds.items()}
        rows.append(dict(case=label, schedule=schedule, epochs=epochs, n=len(X), unit=what,
                         cost=cost, ratio=cost["fann"] / cost["fastbp"], mse=final))
        out(_tiny_line(rows[-1]))
    out(f"us = microseconds per epoch ({len(xor_data()[0])} samples), ns = nanoseconds per "
        f"sample ({TINY_SAMPLES} samples); best of {repeat}")
    return rows


def _tiny_line(row):
    cost, unit = row["cost"], row["unit"][:2]
    return (f"{row['case']:>10} {row['schedule']:>9} {row['epochs']:>7} | "
            f"{cost['fastbp']:7.2f} {unit} {cost['fann']:7.2f} {unit} {row['ratio']:10.2f}x | "
            f"{row['mse']['fastbp']:10.5f} {row['mse']['fann']:8.5f}")


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
    elif args.suite == "sweep" and args.models:
        from fastbp.bench.ensemble import run_models
        for schedule in args.schedules or ("16",):
            run_models(args.models, schedule, args.epochs, args.threads, args.repeat)
    elif args.suite == "sweep":
        run_sweep(args.schedules or ("online", "16"), args.epochs or SWEEP_EPOCHS,
                  args.threads, args.repeat, sklearn_jobs=args.sklearn_jobs or None)
    return 0


if __name__ == "__main__":  # NUMBA_CPU_FEATURES values: see fastbp.bench.machine
    import sys

    from fastbp.bench import machine
    raise SystemExit(machine.main(sys.argv[1:], prog="python -m fastbp.bench.suites"))

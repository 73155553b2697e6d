"""asv suites against the rivals, on the work FANN's users and sweep users do
(fastbp/bench/suites.py holds the contenders; ``fastbp bench --suite`` prints the same
comparisons as tables):

- ``FannData``: full-batch iRprop- on FANN's benchmark sets (benchmarks/fann-data/),
  fastbp against FANN, same net and initial weights;
- ``Tiny``: 4-sample XOR and 2-32-1, the fixed per-epoch and per-sample cost, against FANN;
- ``SweepScaling``: fastbp.Sweep of 16 models of 64-32-10 against the same models'
  Trainer.fit one after another and against scikit-learn's GridSearchCV.

``time_`` benchmarks time one contender's whole trial (a fresh copy of the network, its
training call, its outputs); ``track_`` ones report what the trials time themselves --
the training call alone -- as the ratio of the contenders measured side by side in one
process (best of a few alternating runs), the number that matters on a shared machine.

Short by default; FASTBP_BENCH_FULL=1 runs the full sizes (10^5 XOR epochs, 10 sweep
epochs on all of digits); FASTBP_BENCH_SMOKE=1 shrinks everything to a few epochs (the
CI smoke run in tests/test_bench_suites.py).
"""
import math
import os
import pathlib

from fastbp.bench import harness, suites

# asv installs fastbp into its own environment: the data travel with the benchmarks.
FANN_DIR = pathlib.Path(__file__).resolve().parent / "fann-data"

FULL = os.environ.get("FASTBP_BENCH_FULL") == "1"
SMOKE = os.environ.get("FASTBP_BENCH_SMOKE") == "1"

FANN_EPOCHS = 3 if SMOKE else suites.FANN_EPOCHS
XOR_EPOCHS = 50 if SMOKE else (suites.XOR_EPOCHS if FULL else 10_000)
SWEEP_EPOCHS = 1 if SMOKE else (suites.SWEEP_EPOCHS if FULL else 3)
SWEEP_SAMPLES = 120 if SMOKE else None
SWEEP_GRID = ({"learning_rate": [0.03, 0.1], "seed": [0, 1]} if SMOKE else suites.SWEEP_GRID)
REPEAT = 1 if SMOKE else 3  # alternating runs behind each track_ ratio


def _require_fann():
    from fastbp.bench import fann
    try:
        fann.load("float32")
    except ImportError as exc:
        raise NotImplementedError(str(exc)) from None


def _speedup_over_fann(trials, epochs):
    best = harness.best_of(trials, epochs, REPEAT)
    return best["fann"][0] / best["fastbp"][0]


class FannData:
    """300 epochs of full-batch iRprop- on a FANN benchmark set: fastbp and FANN."""
    params = [list(suites.FANN_SETS)]
    param_names = ["set"]
    timeout = 300

    def setup(self, name):
        _require_fann()
        from fastbp.bench import fann
        X, Y = suites.fann_set(name, FANN_DIR)
        self.Y = Y
        net0 = suites.fann_style_network([X.shape[1], 32, Y.shape[1]])
        rp = suites.RPROP
        self.trials = {
            "fastbp": suites.fastbp_trial(net0, X, Y, schedule="fullbatch", optimizer="rprop",
                                          learning_rate=rp["initial_step"], etas=rp["etas"],
                                          step_sizes=rp["step_sizes"], shuffle=False, seed=0),
            "fann": suites.fann_trial(net0, X, Y, fann.FANN_TRAIN_RPROP, rprop=rp)}
        harness.check_same_start(self.trials, Y)
        for trial in self.trials.values():
            trial(2)  # compile outside the timings

    def time_fastbp(self, name):
        self.trials["fastbp"](FANN_EPOCHS)

    def time_fann(self, name):
        self.trials["fann"](FANN_EPOCHS)

    def track_speedup_over_fann(self, name):
        return _speedup_over_fann(self.trials, FANN_EPOCHS)
    track_speedup_over_fann.unit = "x"

    def track_final_mse_fastbp_over_fann(self, name):
        """fastbp's final training MSE / FANN's: near 1 when both did the same work."""
        best = harness.best_of(self.trials, FANN_EPOCHS, 1, warmup_epochs=1)
        out = {k: harness.mse(v[1], self.Y) for k, v in best.items()}
        return out["fastbp"] / out["fann"] if out["fann"] > 0 else math.nan
    track_final_mse_fastbp_over_fann.unit = "ratio"


_TINY = {f"{label} {schedule}": (sizes, X, Y, schedule, epochs, unit)
         for label, sizes, X, Y, schedule, epochs, unit in suites.tiny_cases(XOR_EPOCHS)}


class Tiny:
    """Tiny nets, where fixed costs dominate: XOR full batch (per epoch) and 2-32-1 (per
    sample), fastbp against FANN, plain gradient descent."""
    params = [list(_TINY)]
    param_names = ["case"]
    timeout = 300

    def setup(self, case):
        _require_fann()
        from fastbp.bench import fann
        sizes, X, Y, schedule, self.epochs, unit = _TINY[case]
        self.per = self.epochs * (len(X) if unit == "sample" else 1)
        self.scale = 1e6 if unit == "epoch" else 1e9
        net0 = suites.fann_style_network(sizes)
        algorithm = {"online": fann.FANN_TRAIN_INCREMENTAL,
                     "fullbatch": fann.FANN_TRAIN_BATCH}[schedule]
        self.trials = {"fastbp": suites.fastbp_trial(net0, X, Y, schedule=schedule,
                                                     learning_rate=0.7, shuffle=False, seed=0),
                       "fann": suites.fann_trial(net0, X, Y, algorithm, learning_rate=0.7)}
        harness.check_same_start(self.trials, Y)
        for trial in self.trials.values():
            trial(2)

    def time_fastbp(self, case):
        self.trials["fastbp"](self.epochs)

    def time_fann(self, case):
        self.trials["fann"](self.epochs)

    def track_fastbp_cost(self, case):
        """Microseconds per epoch (XOR) or nanoseconds per sample (2-32-1)."""
        return min(self.trials["fastbp"](self.epochs)[0] for _ in range(REPEAT)) \
            / self.per * self.scale
    track_fastbp_cost.unit = "us/epoch or ns/sample"

    def track_speedup_over_fann(self, case):
        return _speedup_over_fann(self.trials, self.epochs)
    track_speedup_over_fann.unit = "x"


class SweepScaling:
    """16 models of 64-32-10 on digits: fastbp.Sweep against the same models' Trainer.fit one
    after another (efficiency = sweep rate / (threads x one-by-one rate)) and against
    GridSearchCV(MLPClassifier)."""
    params = [["online", "16"], [1, 2]]
    param_names = ["schedule", "threads"]
    timeout = 600

    def setup(self, schedule, threads):
        import numba
        if threads > numba.config.NUMBA_NUM_THREADS:
            raise NotImplementedError(f"only {numba.config.NUMBA_NUM_THREADS} threads")
        X, y, train, val = suites.sweep_data(SWEEP_SAMPLES)
        self.K = math.prod(len(v) for v in SWEEP_GRID.values())
        self.trials = {"one by one": suites.fastbp_one_by_one(X, y, train, val, schedule,
                                                              SWEEP_GRID, threads),
                       "sweep": suites.fastbp_sweep(X, y, train, val, schedule, SWEEP_GRID,
                                                    threads)}
        try:
            import sklearn  # noqa: F401
            self.sklearn = suites.sklearn_grid(X, y, train, val, schedule, SWEEP_GRID,
                                               n_jobs=1 if SMOKE else -1)
        except ImportError:
            self.sklearn = None
        self.threads = threads
        for trial in self.trials.values():
            trial(1)

    def time_sweep(self, *params):
        self.trials["sweep"](SWEEP_EPOCHS)

    def track_efficiency(self, *params):
        best = harness.best_of(self.trials, SWEEP_EPOCHS, REPEAT, warmup_epochs=1)
        return best["one by one"][0] / (self.threads * best["sweep"][0])
    track_efficiency.unit = "ratio"

    def track_speedup_over_sklearn(self, *params):
        if self.sklearn is None:
            return math.nan  # scikit-learn is not installed
        trials = dict(self.trials, sklearn=self.sklearn)
        del trials["one by one"]
        best = harness.best_of(trials, SWEEP_EPOCHS, REPEAT, warmup_epochs=1)
        return best["sklearn"][0] / best["sweep"][0]
    track_speedup_over_sklearn.unit = "x"

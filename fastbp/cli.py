"""Command line: ``fastbp train`` (the default command) and ``fastbp bench``.

``fastbp train`` reads a data set and decides the task (``fastbp.datasets.load`` and
``prepare``), holds out a part, standardizes the inputs -- and a regression's targets --
with the training part's statistics (``--no-scale``: as given), trains one network or,
with ``--sweep``, a grid of them (``fastbp.Sweep``; ``fastbp.grid.parse_grid``), and
reports the loss per epoch, the held-out score and the throughput. Every problem with the
options or the data is one line on stderr and exit code 2; a warning is one line too.
"""
import argparse
import itertools
import math
import os
import re
import sys
import time
import warnings

import numpy as np

from fastbp import __version__, datasets
from fastbp._cli_options import AUTO_THREADS, AUTO_THREADS_SWEEP, HelpFormatter, add_train_options
from fastbp.grid import parse_grid
from fastbp.network import Network
from fastbp.preprocessing import InputScaling
from fastbp.sweep import Sweep
from fastbp.trainer import Trainer

# -- options ----------------------------------------------------------------------------

def _check_options(args):
    """Checks that need no data and no training: fail before either."""
    f = args.test_fraction
    if not (math.isfinite(f) and 0 < f < 1):
        raise ValueError(f"--test-fraction must be a number between 0 and 1 (exclusive); "
                         f"got {f!r}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be a positive integer; got {args.threads}")
    if args.epochs < 1:
        raise ValueError(f"--epochs must be a positive integer; got {args.epochs}")
    if args.save:
        folder = os.path.dirname(os.path.abspath(args.save))
        if os.path.isdir(args.save):
            raise ValueError(f"--save {args.save} is a folder; give a file name")
        if not os.path.isdir(folder):
            raise ValueError(f"--save {args.save}: the folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise ValueError(f"--save {args.save}: the folder {folder} is not writable")


# -- what a run trains on ---------------------------------------------------------------

class _Plan:
    """What one run trains on, all taken from the training part: the scaling of the inputs
    and, for a regression with an identity output, of the targets (None with --no-scale);
    the training and held-out parts as the networks take them (fit_data); the raw
    held-out part, for the final scores.

    Targets are standardized because raw ones far from 0 (scikit-learn's diabetes: 25..346)
    make the first mse gradients so large that the default learning rate diverges. After
    training, their scaling is folded into the output layer (``W <- scale * W``, ``b <-
    scale * b + offset``, per output): the network predicts in the targets' own units."""

    def __init__(self, args, data, X, y, X_test, y_test, output):
        self.data, self.X_test, self.y_test = data, X_test, y_test
        self.inputs = InputScaling.fit(X) if args.scale else None
        self.targets = (InputScaling.fit(y) if args.scale and not data.classification
                        and output == "identity" else None)
        if self.targets is not None:
            y, y_test = (self.targets.apply(Y, np.float64) for Y in (y, y_test))
        self.fit_data = X, y, X_test, y_test

    def notes(self, args):
        """The banner's lines on the task (which, and why), the scaling and class names."""
        data = self.data
        what = "classification" if data.classification else "regression"
        why = data.reason  # class names are classes: nothing to override
        if args.task != "auto":
            why = f"--task {args.task}"
        elif data.classes is None:
            why += f"; --task {'regress' if data.classification else 'classify'} to override"
        lines = [f"task: {what} ({why})"]
        if self.inputs is None:
            lines.append("scaling: none (--no-scale): the inputs and targets as given")
        else:
            targets = ("; the targets too, and the output layer maps back to their units "
                       "after training (losses are those of the standardized targets)"
                       if self.targets is not None else "")
            lines.append("scaling: inputs standardized with the training part's column means "
                         f"and standard deviations, saved with the network{targets}; "
                         "--no-scale to train on the data as given")
        if data.classes is not None:
            names = ", ".join(f"{i}={c}" for i, c in enumerate(data.classes))
            lines.append(f"classes: {names}")
        return lines

    def finish(self, net):
        """The trained net as it is reported and saved: its input scaling attached (a
        sweep's networks trained on inputs scaled beforehand), the target scaling folded
        into its output layer."""
        if self.inputs is not None:
            net.input_scaling = self.inputs
        if self.targets is not None:
            W, b, scale = net.weights[-1], net.biases[-1], self.targets.scale
            W[...] = W.astype(np.float64) * scale[:, None]
            b[...] = b.astype(np.float64) * scale + self.targets.offset

    def score(self, net):
        """The finished net's held-out accuracy, or its (R^2 averaged over the outputs,
        RMSE over all outputs) in the targets' units."""
        X, y = self.X_test, self.y_test
        if self.data.classification:
            out = net.forward(X)
            predicted = out.argmax(axis=1) if out.shape[1] > 1 else (out[:, 0] > 0.5)
            return float(np.mean(predicted == y))
        with np.errstate(all="ignore"):
            rmse = float(np.sqrt(np.mean((net.forward(X).astype(np.float64) - y) ** 2)))
        return net.score(X, y), rmse


# -- training ---------------------------------------------------------------------------

def _echo(progress):
    """print, or tqdm.write while a progress bar is showing (so lines do not break it)."""
    if progress:
        from tqdm.auto import tqdm
        return lambda line: tqdm.write(line)
    return lambda line: print(line, flush=True)


def _warm_up(make, X, y, X_test, y_test):
    """Compile (or load from Numba's cache) the kernels a fit will run, on a few rows and a
    throwaway model (a Trainer or a Sweep, from make()), so that timed epochs measure
    training alone; returns seconds spent. Its warnings and divergence are the real fit's
    to report."""
    started = time.perf_counter()
    m = min(len(X), 256)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            make().fit(X[:m], y[:m], epochs=1, validation_data=(X_test[:m], y_test[:m]))
        except FloatingPointError:
            pass  # the kernels are compiled all the same
    return time.perf_counter() - started


def train(args):
    _check_options(args)
    grid = parse_grid(args.sweep, name="--sweep") if args.sweep is not None else None
    data = datasets.prepare(*datasets.load(args.data, args.target), task=args.task,
                            name=args.data)
    if args.test_data:
        held_out = datasets.prepare(*datasets.load(args.test_data, args.target),
                                    name=args.test_data, like=data)
        parts = data.X, data.y, held_out.X, held_out.y
    else:
        fit, test = datasets.split_rows(len(data.X), args.test_fraction, args.seed)
        parts = data.X[fit], data.y[fit], data.X[test], data.y[test]
    sizes = [data.X.shape[1], *args.hidden, data.n_outputs]
    output = args.output or ("softmax" if data.classification else "identity")
    loss = args.loss or ("cross_entropy" if output in ("softmax", "sigmoid") else "mse")
    if args.learning_rate is None:
        args.learning_rate = 0.1 if data.classification else 0.01
    plan = _Plan(args, data, *parts, output)
    if grid is not None:
        return _train_sweep(args, grid, sizes, output, loss, plan)
    return _train_one(args, sizes, output, loss, plan)


def _network_options(args, output, loss):
    return dict(activations=[args.activation] * len(args.hidden) + [output], loss=loss,
                dtype=args.dtype)


def _trainer_options(args, optimizer_in_grid=False):
    if args.momentum is not None:
        momentum = args.momentum
    else:  # 0.9 for plain SGD; 0 when the optimizer is swept (momentum is SGD's only)
        momentum = 0.9 if args.optimizer == "sgd" and not optimizer_in_grid else 0.0
    return dict(schedule=args.schedule, batch_size=args.batch_size,
                learning_rate=args.learning_rate, momentum=momentum, l2=args.l2,
                backend=args.backend, optimizer=args.optimizer,
                lr_schedule=args.lr_schedule, threads=args.threads)


def _train_one(args, sizes, output, loss, plan):
    X, y, X_test, y_test = plan.fit_data
    net_options, trainer_options = _network_options(args, output, loss), _trainer_options(args)

    def make():
        net = Network(sizes, seed=args.seed, **net_options)
        net.input_scaling = plan.inputs
        return Trainer(net, seed=args.seed, **trainer_options)

    trainer = make()
    net = trainer.net
    threads = f"auto ({AUTO_THREADS})" if args.threads is None else args.threads
    backend = args.backend
    if backend == "auto":  # which, and why: as the fit will pick it
        trainer.resolve_backend(trainer.batch_rows(len(X)))
        backend = f"{trainer.backend_used} ({trainer.backend_reason})"
    print(f"fastbp: {net}, {len(X)} training and {len(X_test)} held-out samples; "
          f"{args.schedule}, {args.optimizer}, lr={args.learning_rate}, "
          f"{trainer.lr_schedule}, backend={backend}, threads={threads}", flush=True)
    print(*plan.notes(args), sep="\n")
    compile_s = _warm_up(make, X, y, X_test, y_test)
    echo = _echo(args.progress)

    done = []  # epochs finished, for the divergence message

    def report(epoch, history):
        done.append(epoch)
        if not args.quiet:
            val = f"  held-out loss {history.val_loss[-1]:.4f}" if history.val_loss else ""
            echo(f"epoch {epoch + 1:4d}  loss {history.loss[-1]:.4f}{val}  "
                 f"({history.seconds[-1] * 1e3:.1f} ms)")
        return False

    try:
        history = trainer.fit(X, y, epochs=args.epochs, validation_data=(X_test, y_test),
                              progress=args.progress, patience=args.patience,
                              callback=report)
    except FloatingPointError as exc:
        # Epochs are counted from 1 here as in the per-epoch lines; the Trainer's message
        # may count from 0, so its own "epoch N:" prefix is dropped.
        detail = re.sub(r"^epoch \d+:\s*", "", str(exc))
        raise FloatingPointError(f"epoch {len(done) + 1}: {detail} (--lr "
                                 f"{args.learning_rate})") from None
    seconds = sum(history.seconds)
    rate = history.epochs * len(X) / seconds if seconds > 0 else float("inf")
    print(f"trained {history.epochs} epochs in {seconds:.3f} s, {rate:,.0f} samples/s "
          f"(kernels compiled or loaded from cache beforehand, in {compile_s:.2f} s, "
          "not timed)")
    if history.stopped_early:
        best = history.best_epoch + 1
        print(f"stopped early after epoch {history.epochs}: no better held-out loss for "
              f"{args.patience} epochs; kept the weights of the best epoch, {best} "
              f"(held-out loss {history.val_loss[history.best_epoch]:.4f})")
    held_out_loss = None if plan.data.classification else float(net.loss(X_test, y_test))
    plan.finish(net)
    if plan.data.classification:
        print(f"held-out accuracy: {plan.score(net):.4f}")
    else:
        scaled = " (standardized targets)" if plan.targets is not None else ""
        r2, rmse = plan.score(net)
        print(f"held-out loss: {held_out_loss:.6f}{scaled}; R^2 {r2:.4f}, RMSE {rmse:.4g}")
    if args.save:
        trainer.save(args.save)
        print(f"saved to {args.save} (fastbp.Network.load or fastbp.Trainer.load to resume)")
    return 0


def _sweep_settings(args, grid, sizes, output, loss):
    """(layer sizes or None, Sweep's grid, its fixed settings) for the --sweep grid, whose
    shorthands hidden and activation become layer_sizes and activations."""
    fixed = {**_network_options(args, output, loss),
             **_trainer_options(args, optimizer_in_grid="optimizer" in grid),
             "seed": args.seed}
    hidden = [args.hidden]
    if "hidden" in grid:  # "hidden=32,64x32" -> hidden layers [32] and [64, 32]
        hidden = [[int(n) for n in str(v).split("x")] for v in grid["hidden"]]
        if len({len(h) for h in hidden}) > 1:
            raise ValueError(f"--sweep: the values of hidden must have the same number of "
                             f"layers (the activations are per layer); got {grid['hidden']}")
    depth = len(hidden[0])
    fixed["activations"] = [args.activation] * depth + [output]
    sweep_grid = {}
    for key, values in grid.items():
        if key == "activation":  # the hidden layers' activation, as --activation
            fixed.pop("activations")
            sweep_grid["activations"] = [[v] * depth + [output] for v in values]
        elif key == "hidden":
            sweep_grid["layer_sizes"] = [[sizes[0], *h, sizes[-1]] for h in hidden]
        else:
            fixed.pop(key, None)
            sweep_grid[key] = values
    return (None if "hidden" in grid else sizes), sweep_grid, fixed


def _train_sweep(args, grid, sizes, output, loss, plan):
    import numba
    X, y, X_test, y_test = plan.fit_data
    if plan.inputs is not None:  # Sweep's networks take inputs as given: scaled here
        X, X_test = plan.inputs.apply(X, np.float64), plan.inputs.apply(X_test, np.float64)
    layer_sizes, sweep_grid, fixed = _sweep_settings(args, grid, sizes, output, loss)
    try:
        sweep = Sweep(layer_sizes, grid=sweep_grid, **fixed)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--sweep: {exc}") from None
    labels = list(itertools.product(*grid.values()))
    threads = (f"auto ({AUTO_THREADS_SWEEP}: {numba.get_num_threads()})"
               if args.threads is None else args.threads)
    shape = "-".join(map(str, sizes if "hidden" not in grid
                          else [sizes[0], "(hidden)", sizes[-1]]))
    print(f"fastbp: sweep of {len(labels)} networks {shape}, "
          f"{len(X)} training and {len(X_test)} held-out samples; {args.schedule}, "
          f"backend={args.backend}, threads={threads}", flush=True)
    print(*plan.notes(args), sep="\n")
    first = {k: [v[0]] for k, v in sweep_grid.items()}
    compile_s = _warm_up(lambda: Sweep(layer_sizes, grid=first, **fixed),
                         X, y, X_test, y_test)
    started = time.perf_counter()
    result = sweep.fit(X, y, epochs=args.epochs, validation_data=(X_test, y_test),
                       progress=args.progress, patience=args.patience)
    seconds = time.perf_counter() - started
    best = result.best()
    _print_sweep_table(grid, labels, result, best, plan)
    samples = sum(h.epochs for h in result.history) * len(X)
    print(f"trained {len(labels)} networks in {seconds:.3f} s, {samples / seconds:,.0f} "
          f"samples/s over all models (kernels compiled or loaded from cache beforehand, "
          f"in {compile_s:.2f} s, not timed)")
    settings = ", ".join(f"{k}={v}" for k, v in zip(grid, labels[best]))
    print(f"best (*): model {best}, {settings}, by the lowest final held-out loss")
    if args.save:
        result.trainers[best].save(args.save)
        print(f"saved model {best} to {args.save} (fastbp.Network.load or "
              "fastbp.Trainer.load to resume)")
    return 0


def _print_sweep_table(grid, labels, result, best, plan):
    """One row per model: its settings, epochs, last losses and held-out score (accuracy,
    or R^2 of a regression), the best marked with *. Each network is finished here
    (plan.finish): scaled as a single run's, so that it scores and saves alike."""
    data = plan.data
    score = "accuracy" if data.classification else "R^2"
    head = ["", "#", *grid, "epochs", "loss", "held-out loss", score]
    rows = []
    for i, (values, history, net) in enumerate(zip(labels, result.history, result.networks)):
        plan.finish(net)
        value = plan.score(net) if data.classification else plan.score(net)[0]
        loss_ = f"{history.loss[-1]:.4f}" if history.loss else "-"
        val = f"{history.val_loss[-1]:.4f}" if history.val_loss else "-"
        note = " diverged" if history.diverged else (" stopped" if history.stopped_early
                                                     else "")
        rows.append(["*" if i == best else "", str(i), *map(str, values),
                     f"{history.epochs}{note}", loss_, val,
                     f"{value:.4f}" if np.isfinite(value) else "nan"])
    widths = [max(len(r[j]) for r in [head, *rows]) for j in range(len(head))]
    for row in [head, *rows]:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)).rstrip())


# -- the parser -------------------------------------------------------------------------

def _parser():
    parser = argparse.ArgumentParser(
        prog="fastbp", formatter_class=HelpFormatter,
        description="Train multilayer perceptrons with backpropagation, fast.")
    parser.add_argument("--version", action="version", version=f"fastbp {__version__}")
    sub = parser.add_subparsers(dest="command")
    p_train = sub.add_parser("train", formatter_class=HelpFormatter,
                             help="train a network (the default command; default data: the "
                                  "bundled digits)")
    add_train_options(p_train)
    p_train.set_defaults(func=train)
    p_bench = sub.add_parser("bench", formatter_class=HelpFormatter,
                             help="time the loop kernels against their rivals")
    from fastbp.bench import compare
    compare.add_options(p_bench)
    p_bench.set_defaults(func=compare.main)
    p_warm = sub.add_parser("warmup", formatter_class=HelpFormatter,
                            help="compile every CPU kernel ahead, once after installing, so "
                                 "that no later first fit waits for Numba (minutes, once)")
    p_warm.set_defaults(func=warmup)
    return parser


def warmup(args):
    from fastbp import warmup as warm
    warm.run()
    return 0


def _warn_in_one_line(message, category, filename, lineno, file=None, line=None):
    """warnings.showwarning while a command runs: "fastbp: warning: <message>", one line
    on stderr, without the Python file, line and source that the default shows."""
    text = " ".join(str(message).split()) or category.__name__
    print(f"fastbp: warning: {text}", file=sys.stderr if file is None else file, flush=True)


def main(argv=None):
    """Run the command line on argv (default: sys.argv[1:]); returns the exit code: 0, or
    2 after one line on stderr for bad options or data, divergence, a missing file or
    GPU. ``train`` is the command when none is named."""
    parser = _parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["train", *argv]
    args = parser.parse_args(argv)
    if getattr(args, "target", None) is not None and re.fullmatch(r"-?\d+", args.target):
        args.target = int(args.target)
    with warnings.catch_warnings():
        warnings.showwarning = _warn_in_one_line
        try:
            return args.func(args)
        except (ValueError, TypeError, FloatingPointError, RuntimeError, OSError,
                MemoryError) as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            print(f"fastbp: error: {message}", file=sys.stderr)
            return 2

"""Command line: ``fastbp train`` (the default command) and ``fastbp bench``.

``fastbp train`` reads a data set (the bundled digits, an ``.npz``, a CSV or a FANN
training file), checks it, splits off a held-out part (or reads one with ``--test-data``),
trains one network -- or, with ``--sweep``, a grid of them through :class:`fastbp.Sweep`
-- and reports the loss per epoch, the held-out score and the throughput. Every problem
with the options or the data is one line on stderr and exit code 2.
"""
import argparse
import itertools
import math
import os
import re
import sys
import time
import zipfile

import numpy as np

from fastbp import backends
from fastbp.kernels import codes
from fastbp.network import Network
from fastbp.trainer import SCHEDULES, Trainer

TASKS = ("auto", "classify", "regress")


class DataError(ValueError):
    """The data a command was given cannot be trained on (one line, exit code 2)."""


# -- reading data -----------------------------------------------------------------------

def _load_npz(path):
    """X and y (or Y) from the .npz file path; every problem is one DataError line.

    The file is opened once, and only as a regular file: a FIFO or a device is refused
    before it is opened (a FIFO would block the open, a device never end)."""
    from fastbp import datasets
    try:
        f = datasets._open_regular(path)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    with f:
        if not zipfile.is_zipfile(f):
            raise DataError(f"{path} is not an .npz file (a zip archive of NumPy arrays); "
                            "--data takes 'digits', an .npz with X and y (or Y), a .csv, or "
                            "a FANN .train/.data file")
        f.seek(0)
        try:
            with np.load(f, allow_pickle=False) as data:
                if "X" not in data.files or not ({"y", "Y"} & set(data.files)):
                    raise DataError(f"{path} must hold arrays 'X' and 'y' (labels) or 'Y'; "
                                    f"it holds {sorted(data.files)}")
                return data["X"], data["y"] if "y" in data.files else data["Y"]
        except DataError:
            raise
        except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError,
                NotImplementedError, RuntimeError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if "pickle" in message:
                message = "it holds Python objects, not plain numeric arrays"
            raise DataError(f"{path} is not a readable .npz of NumPy arrays: "
                            f"{message}") from None


def load_data(spec, target=-1):
    """(X, y) from 'digits', an .npz (X and y or Y), a CSV (last column, or ``target``, is
    the target) or a FANN training file; the kind comes from the suffix, else the content.

    Only a regular file is read (symbolic links followed): a FIFO, /dev/zero or another
    device is refused before it is opened, as one DataError line, since opening a FIFO
    blocks and a device is read until memory runs out."""
    from fastbp import datasets
    if spec == "digits":
        return datasets.load_digits()
    if not os.path.exists(spec):
        raise DataError(f"{spec}: no such file")
    if os.path.isdir(spec):
        raise DataError(f"{spec} is a folder, not a data file")
    try:
        datasets._check_regular(spec)
        kind, by_suffix = datasets._sniff(spec)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    if kind == "npz":
        return _load_npz(spec)
    try:
        if kind == "fann":
            return datasets.load_fann(spec)
        return datasets.load_csv(spec, target=target)
    except ValueError as exc:
        if by_suffix:
            raise DataError(str(exc)) from None
        reason = str(exc).removeprefix(f"{spec} ").removeprefix(f"{spec}, ")
        raise DataError(f"{spec} is not an .npz, CSV or FANN training file, going by its "
                        f"content (read as {'FANN' if kind == 'fann' else 'CSV'}: {reason}); "
                        "--data takes 'digits', an .npz with X and y (or Y), a .csv, or a "
                        "FANN .train/.data file") from None


def _one_hot_like(Y):
    """Class labels (argmax) when every row of the 2-D Y marks exactly one class with the
    high value and the rest with the low one, ``{0, 1}`` or ``{-1, 1}`` (FANN's encodings);
    for one column, the two values are classes 0 and 1. None otherwise."""
    values = np.unique(Y)
    if values.size > 2 or not (set(values.tolist()) <= {0.0, 1.0}
                               or set(values.tolist()) <= {-1.0, 1.0}):
        return None
    high = Y == 1.0
    if Y.shape[1] == 1:
        return high[:, 0].astype(np.int64) if values.size == 2 else None
    if not np.all(high.sum(axis=1) == 1):
        return None
    return high.argmax(axis=1).astype(np.int64)


def prepare(X, y, task="auto", name="the data", n_classes=None):
    """Check (X, y) and decide the task: returns (X, y, classification, n_out, classes).

    ``n_classes``: the held-out data of a training set with that many classes (labels
    must be below it; one class is fine). y comes back as int64 labels 0..K-1 for
    classification (``classes`` names them when the file held names), else as an (n, k)
    float target matrix. Raises DataError with one line for anything that cannot be
    trained on.
    """
    X, y = np.asarray(X), np.asarray(y)
    if X.dtype.kind not in "biuf":
        raise DataError(f"X of {name} must hold numbers; got dtype {X.dtype}")
    if X.ndim != 2:
        raise DataError(f"X of {name} must be 2-D (samples, features); got shape {X.shape}")
    if X.shape[0] < 2 or X.shape[1] < 1:
        raise DataError(f"X of {name} has shape {X.shape}; it needs at least 2 samples "
                        "and 1 feature")
    if not np.isfinite(X).all():
        row = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise DataError(f"X of {name} holds NaN or infinite values (first in row {row})")
    if y.ndim not in (1, 2):
        raise DataError(f"y of {name} must be 1-D labels or a 2-D (samples, outputs) "
                        f"matrix; got shape {y.shape}")
    if y.shape[0] != X.shape[0]:
        raise DataError(f"{name} has {X.shape[0]} rows of X but {y.shape[0]} of y; they "
                        "must be aligned, one target per sample")
    classes = None
    if y.dtype.kind in "US":  # class names (a CSV's target column)
        if task == "regress":
            raise DataError(f"--task regress needs numeric targets; y of {name} holds "
                            f"names such as {y[0]!r}")
        classes, y = np.unique(y, return_inverse=True)
        task = "classify"
    elif y.dtype.kind not in "biuf":
        raise DataError(f"y of {name} must hold numbers or class names; got dtype {y.dtype}")
    elif not np.isfinite(y).all():
        raise DataError(f"y of {name} holds NaN or infinite values")
    if y.dtype.kind == "b":
        y = y.astype(np.int64)
    if y.ndim == 2 and task != "regress":
        labels = _one_hot_like(y)
        if labels is None and task == "classify":
            raise DataError(f"--task classify: the {y.shape[1]} target columns of {name} "
                            "are not one class per row (one-hot with 0/1 or -1/1)")
        if labels is not None:
            y, task = labels, "classify"
    if task == "auto":
        task = "classify" if y.ndim == 1 and bool(np.all(y == np.round(y))) else "regress"
    if task == "regress":
        Y = np.asarray(y, dtype=np.float64)
        Y = Y[:, None] if Y.ndim == 1 else Y
        return X, Y, False, Y.shape[1], None
    if y.ndim != 1 or not np.all(y == np.round(y)):
        raise DataError(f"--task classify needs whole-number class labels; y of {name} "
                        "holds fractions")
    if y.min() < 0:
        raise DataError(f"class labels of {name} must be 0..K-1; found {y.min():g}")
    if n_classes is not None:
        if y.max() >= n_classes:
            raise DataError(f"class label {y.max():g} of {name} is not a class of the "
                            f"training data (0..{n_classes - 1})")
        return X, y.astype(np.int64), True, n_classes, classes
    n_classes = float(y.max()) + 1
    if n_classes > X.shape[0]:
        raise DataError(f"class label {y.max():g} of {name} is out of range: labels must be "
                        f"0..K-1 with K at most the number of samples ({X.shape[0]}); "
                        "renumber the classes, or use --task regress")
    y = y.astype(np.int64)
    if n_classes < 2:
        raise DataError(f"y of {name} holds one class only; classification needs two")
    return X, y, True, int(n_classes), classes


def _split(n, test_fraction, seed):
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(n * test_fraction)))
    return order[n_test:], order[:n_test]


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


def _sweep_keys():
    from fastbp import sweep
    # layer_sizes and activations are lists: the grid keys "hidden" (hidden layer sizes,
    # 64 or 64x32) and "activation" (the hidden layers' activation) stand in for them.
    return sorted(set(sweep.KEYS) - {"layer_sizes", "activations"} | {"activation", "hidden"})


def _hidden_layers(value):
    """A --sweep value of hidden: 64 or "64x32" -> [64] or [64, 32]."""
    parts = str(value).split("x")
    if not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"--sweep: hidden values are layer sizes such as 64 or 64x32; "
                         f"got {value!r}")
    return [int(p) for p in parts]


def _value(text):
    """An option value as the int, float, bool, None or text it spells."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_sweep(spec):
    """"learning_rate=0.01,0.1 seed=0,1,2" -> {"learning_rate": [0.01, 0.1], "seed": [0, 1, 2]}.

    Keys are keywords of Network or Trainer (dashes may stand for underscores); values are
    comma-separated and read as int, float, true/false, none or text. lr_schedule values,
    which hold commas themselves, are split before each schedule name.
    """
    keys = _sweep_keys()
    grid = {}
    tokens = spec.split()
    if not tokens:
        raise ValueError("--sweep is empty; give KEY=V1,V2 pairs, e.g. "
                         "'learning_rate=0.01,0.1 seed=0,1'")
    for token in tokens:
        key, sep, values = token.partition("=")
        key = key.replace("-", "_")
        if not sep or not key or not values:
            raise ValueError(f"--sweep: {token!r} is not KEY=V1,V2,...")
        if key not in keys:
            raise ValueError(f"--sweep: {key!r} is not a keyword of Network or Trainer; "
                             f"the grid keys are {', '.join(keys)}")
        if key in grid:
            raise ValueError(f"--sweep: {key!r} is given twice")
        if key == "lr_schedule":
            parts = re.split(r",(?=(?:constant|invscaling|step|plateau)\b)", values)
        else:
            parts = values.split(",")
        if any(not p for p in parts):
            raise ValueError(f"--sweep: {token!r} has an empty value")
        grid[key] = [_value(p) for p in parts]
        if key == "hidden":
            for v in grid[key]:
                _hidden_layers(v)
    return grid


# -- training ---------------------------------------------------------------------------

def _echo(progress):
    """print, or tqdm.write while a progress bar is showing (so lines do not break it)."""
    if progress:
        from tqdm.auto import tqdm
        return lambda line: tqdm.write(line)
    return lambda line: print(line, flush=True)


def _score(net, X, y, classification, n_out):
    """('held-out accuracy', value) or ('held-out loss', value)."""
    if classification:
        out = net.forward(X)
        predicted = out.argmax(axis=1) if n_out > 1 else (out[:, 0] > 0.5).astype(int)
        return "held-out accuracy", float(np.mean(predicted == y))
    return "held-out loss", float(net.loss(X, y))


def _warm_up(make, X, y, X_test, y_test):
    """Compile (or load from Numba's cache) the kernels a fit will run, on a few rows and a
    throwaway model, so that timed epochs measure training alone. Returns seconds spent."""
    started = time.perf_counter()
    m = min(len(X), 256)
    try:
        make().fit(X[:m], y[:m], epochs=1, validation_data=(X_test[:m], y_test[:m]))
    except FloatingPointError:
        pass  # the kernels are compiled all the same; the real fit reports divergence
    return time.perf_counter() - started


def train(args):
    _check_options(args)
    grid = parse_sweep(args.sweep) if args.sweep is not None else None
    X, y = load_data(args.data, args.target)
    X, y, classification, n_out, classes = prepare(X, y, args.task, args.data)
    if args.test_data:
        X_test, y_test = load_data(args.test_data, args.target)
        if classes is not None:  # class names: numbered as in the training data
            y_test = np.asarray(y_test)
            unknown = sorted(set(y_test.tolist()) - set(classes.tolist()))
            if unknown:
                raise DataError(f"{args.test_data} has classes {unknown[:5]} that "
                                f"{args.data} does not have")
            y_test = np.searchsorted(classes, y_test)
        X_test, y_test, _, n_out_test, _ = prepare(
            X_test, y_test, "classify" if classification else "regress", args.test_data,
            n_classes=n_out if classification else None)
        if X_test.shape[1] != X.shape[1]:
            raise DataError(f"{args.test_data} has {X_test.shape[1]} features; "
                            f"{args.data} has {X.shape[1]}")
        if not classification and n_out_test != n_out:
            raise DataError(f"{args.test_data} has {n_out_test} targets; {args.data} "
                            f"has {n_out}")
        X_train, y_train = X, y
    else:
        train_rows, test_rows = _split(len(X), args.test_fraction, args.seed)
        if len(train_rows) < 1:
            raise DataError(f"--test-fraction {args.test_fraction} leaves no training "
                            f"samples of {len(X)}")
        X_train, y_train = X[train_rows], y[train_rows]
        X_test, y_test = X[test_rows], y[test_rows]
    sizes = [X.shape[1], *args.hidden, n_out]
    output = args.output or ("softmax" if classification else "identity")
    loss = args.loss or ("cross_entropy" if output in ("softmax", "sigmoid") else "mse")
    if classes is not None:
        print(f"classes: {', '.join(f'{i}={c}' for i, c in enumerate(classes))}")
    data = (X_train, y_train, X_test, y_test, classification, n_out)
    if grid is not None:
        return _train_sweep(args, grid, sizes, output, loss, data)
    return _train_one(args, sizes, output, loss, data)


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


def _train_one(args, sizes, output, loss, data):
    X, y, X_test, y_test, classification, n_out = data
    net_options, trainer_options = _network_options(args, output, loss), _trainer_options(args)
    net = Network(sizes, seed=args.seed, **net_options)
    trainer = Trainer(net, seed=args.seed, **trainer_options)
    threads = "all" if args.threads is None else args.threads
    print(f"fastbp: {net}, {len(X)} training and {len(X_test)} held-out samples; "
          f"{args.schedule}, {args.optimizer}, {trainer.lr_schedule}, backend={args.backend}, "
          f"threads={threads}", flush=True)
    compile_s = _warm_up(lambda: Trainer(Network(sizes, seed=args.seed, **net_options),
                                         seed=args.seed, **trainer_options),
                         X, y, X_test, y_test)
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
    what, value = _score(net, X_test, y_test, classification, n_out)
    print(f"{what}: {value:.4f}" if classification else f"{what}: {value:.6f}")
    if args.save:
        trainer.save(args.save)
        print(f"saved to {args.save} (fastbp.Network.load or fastbp.Trainer.load to resume)")
    return 0


def _train_sweep(args, grid, sizes, output, loss, data):
    from fastbp.sweep import Sweep
    X, y, X_test, y_test, classification, n_out = data
    fixed = {**_network_options(args, output, loss),
             **_trainer_options(args, optimizer_in_grid="optimizer" in grid),
             "seed": args.seed}
    hidden = [args.hidden]
    if "hidden" in grid:  # "hidden=32,64x32" -> hidden layers [32] and [64, 32]
        hidden = [_hidden_layers(v) for v in grid["hidden"]]
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
    try:
        sweep = Sweep(None if "hidden" in grid else sizes, grid=sweep_grid, **fixed)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--sweep: {exc}") from None
    labels = list(itertools.product(*grid.values()))
    threads = "all" if args.threads is None else args.threads
    shape = "-".join(map(str, sizes if "hidden" not in grid
                          else [sizes[0], "(hidden)", sizes[-1]]))
    print(f"fastbp: sweep of {len(labels)} networks {shape}, "
          f"{len(X)} training and {len(X_test)} held-out samples; {args.schedule}, "
          f"backend={args.backend}, threads={threads}", flush=True)
    first = {k: v[0] for k, v in sweep_grid.items()}
    started = time.perf_counter()
    m = min(len(X), 256)
    Sweep(None if "hidden" in grid else sizes, grid={k: [v] for k, v in first.items()},
          **fixed).fit(  # diverges quietly
        X[:m], y[:m], epochs=1, validation_data=(X_test[:m], y_test[:m]))
    compile_s = time.perf_counter() - started
    started = time.perf_counter()
    result = sweep.fit(X, y, epochs=args.epochs, validation_data=(X_test, y_test),
                       progress=args.progress, patience=args.patience)
    seconds = time.perf_counter() - started
    best = result.best()
    head = ["", "#", *grid, "epochs", "loss", "held-out loss"] + (
        ["accuracy"] if classification else [])
    rows = []
    for i, (values, history, net) in enumerate(zip(labels, result.history, result.networks)):
        _, value = _score(net, X_test, y_test, classification, n_out)
        loss_ = f"{history.loss[-1]:.4f}" if history.loss else "-"
        val = f"{history.val_loss[-1]:.4f}" if history.val_loss else "-"
        note = " diverged" if history.diverged else (" stopped" if history.stopped_early
                                                     else "")
        rows.append(["*" if i == best else "", str(i), *map(str, values),
                     f"{history.epochs}{note}", loss_, val] + (
                         [f"{value:.4f}" if np.isfinite(value) else "nan"]
                         if classification else []))
    widths = [max(len(r[j]) for r in [head, *rows]) for j in range(len(head))]
    for row in [head, *rows]:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)).rstrip())
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


def bench(args):
    from fastbp.bench.compare import main as bench_main
    return bench_main(args)


def _add_train_options(p):
    p.add_argument("--data", default="digits",
                   help="'digits' (bundled, default), an .npz with X and y (or Y), a .csv "
                        "(header row optional; target column last, or --target), or a FANN "
                        "training file (.train, .test, .data); the kind comes from the "
                        "suffix, else from the content")
    p.add_argument("--test-data", metavar="PATH", default=None,
                   help="held-out data from this file (same formats) instead of "
                        "--test-fraction of --data, e.g. a FANN set's .test file")
    p.add_argument("--target", default="-1", metavar="COLUMN",
                   help="CSV target column: a name from the header row, or an index "
                        "(default: -1, the last)")
    p.add_argument("--task", default="auto", choices=TASKS,
                   help="auto (default): whole-number labels, and one-hot 0/1 or -1/1 "
                        "target rows (FANN's encoding, class = argmax), are classification; "
                        "other targets regression")
    p.add_argument("--hidden", type=int, nargs="*", default=[64], metavar="N",
                   help="hidden layer sizes (default: 64)")
    p.add_argument("--activation", default="tanh", choices=sorted(codes.ACTIVATIONS),
                   help="hidden activation (default: tanh)")
    p.add_argument("--output", default=None, choices=sorted(codes.ACTIVATIONS),
                   help="output activation (default: softmax for labels, identity otherwise)")
    p.add_argument("--loss", default=None, choices=sorted(codes.LOSSES))
    p.add_argument("--schedule", default="minibatch", choices=SCHEDULES)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--learning-rate", "--lr", type=float, default=0.1)
    p.add_argument("--optimizer", default="sgd", choices=sorted(codes.OPTIMIZERS),
                   help="sgd (with --momentum), adam, or rprop (best with --schedule fullbatch; "
                        "--lr is then its initial step size)")
    p.add_argument("--lr-schedule", default=None, metavar="SPEC",
                   help="constant (default), invscaling[:decay=D,power=P], "
                        "step[:every=N,gamma=G], plateau[:factor=F,patience=N]")
    p.add_argument("--momentum", type=float, default=None,
                   help="SGD momentum (default: 0.9 with sgd; 0 when --sweep varies the "
                        "optimizer)")
    p.add_argument("--l2", type=float, default=0.0)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--patience", type=int, default=None,
                   help="stop after this many epochs without a better held-out loss, and "
                        "keep the best epoch's weights")
    p.add_argument("--backend", default="loop", choices=backends.BACKENDS)
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for the loop kernels (default: all of Numba's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="share of --data held out for testing, in (0, 1) (default: 0.2)")
    p.add_argument("--sweep", metavar="GRID", default=None,
                   help="train a grid of networks with fastbp.Sweep, e.g. "
                        "'learning_rate=0.01,0.1 seed=0,1,2': space-separated KEY=V1,V2 of "
                        "Network/Trainer keywords, or hidden (64 or 64x32) and activation; "
                        "prints one row per network, marks the best (lowest held-out loss); --save saves it")
    p.add_argument("--save", metavar="PATH", help="write the trained network (.npz)")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="fastbp", description="Train multilayer perceptrons with backpropagation, fast.")
    sub = parser.add_subparsers(dest="command")
    p_train = sub.add_parser("train", help="train a network (default: on the bundled digits)")
    _add_train_options(p_train)
    p_train.set_defaults(func=train)
    p_bench = sub.add_parser("bench", help="time the loop kernels against their rivals")
    from fastbp.bench.compare import add_options
    add_options(p_bench)
    p_bench.set_defaults(func=bench)
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["train", *argv]
    args = parser.parse_args(argv)
    if getattr(args, "target", None) is not None and re.fullmatch(r"-?\d+", args.target):
        args.target = int(args.target)
    try:
        return args.func(args)
    except (ValueError, TypeError, FloatingPointError, RuntimeError, OSError,
            MemoryError) as exc:
        # Bad options or data, divergence, a missing file or GPU: one line, not a traceback.
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"fastbp: error: {message}", file=sys.stderr)
        return 2

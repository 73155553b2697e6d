"""Command line: ``fastbp train`` (the default command) and ``fastbp bench``."""
import argparse
import sys

import numpy as np

from fastbp import backends
from fastbp.kernels import codes
from fastbp.network import Network
from fastbp.trainer import SCHEDULES, Trainer


def _load_data(spec):
    """'digits' (bundled) or an .npz file with arrays X (n, d) and y (n,) or Y (n, k)."""
    if spec == "digits":
        from fastbp.datasets import load_digits
        return load_digits()
    with np.load(spec, allow_pickle=False) as data:
        if "X" not in data.files or not ({"y", "Y"} & set(data.files)):
            raise ValueError(f"{spec} must hold arrays 'X' and 'y' (labels) or 'Y'")
        return data["X"], data["y"] if "y" in data.files else data["Y"]


def _split(n, test_fraction, seed):
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(n * test_fraction)))
    return order[n_test:], order[:n_test]


def train(args):
    X, y = _load_data(args.data)
    y = np.asarray(y)
    # 1-D whole numbers are class labels; other 1-D targets are one regression output.
    classification = y.ndim == 1 and y.dtype.kind in "biuf" and bool(np.all(y == np.round(y)))
    if y.ndim == 1 and not classification:
        y = y[:, None]
    n_out = int(y.max()) + 1 if classification else y.shape[1]
    train_rows, test_rows = _split(len(X), args.test_fraction, args.seed)
    sizes = [X.shape[1], *args.hidden, n_out]
    output = args.output or ("softmax" if classification else "identity")
    loss = args.loss or ("cross_entropy" if output in ("softmax", "sigmoid") else "mse")
    net = Network(sizes, activations=[args.activation] * len(args.hidden) + [output],
                  loss=loss, dtype=args.dtype, seed=args.seed)
    momentum = args.momentum if args.momentum is not None else (
        0.9 if args.optimizer == "sgd" else 0.0)
    trainer = Trainer(net, schedule=args.schedule, batch_size=args.batch_size,
                      learning_rate=args.learning_rate, momentum=momentum, l2=args.l2,
                      seed=args.seed, backend=args.backend, optimizer=args.optimizer,
                      lr_schedule=args.lr_schedule)
    print(f"fastbp: {net}, {len(train_rows)} training and {len(test_rows)} held-out samples; "
          f"{args.schedule}, {args.optimizer}, {trainer.lr_schedule}, backend={args.backend}",
          flush=True)

    def report(epoch, history):
        if not args.quiet:
            val = f"  held-out loss {history.val_loss[-1]:.4f}" if history.val_loss else ""
            print(f"epoch {epoch + 1:4d}  loss {history.loss[-1]:.4f}{val}  "
                  f"({history.seconds[-1] * 1e3:.1f} ms)", flush=True)
        return False

    X_test, y_test = X[test_rows], y[test_rows]
    history = trainer.fit(X[train_rows], y[train_rows], epochs=args.epochs,
                          validation_data=(X_test, y_test), progress=args.progress,
                          patience=args.patience, callback=report)
    seconds = sum(history.seconds)
    # The first epoch of a process also compiles the kernels (about 15 s when Numba's
    # cache is cold), so the rate is that of the later epochs when there are some.
    steady = history.seconds[1:] or history.seconds
    rate = len(steady) * len(train_rows) / sum(steady) if sum(steady) > 0 else float("inf")
    print(f"trained {history.epochs} epochs in {seconds:.3f} s (first epoch "
          f"{history.seconds[0]:.3f} s, with any compilation); {rate:,.0f} samples/s")
    out = net.forward(X_test)
    if classification:
        predicted = out.argmax(axis=1) if n_out > 1 else (out[:, 0] > 0.5).astype(int)
        print(f"held-out accuracy: {np.mean(predicted == y_test):.4f}")
    else:
        print(f"held-out loss: {net.loss(X_test, y_test):.6f}")
    if args.save:
        trainer.save(args.save)
        print(f"saved to {args.save} (fastbp.Network.load or fastbp.Trainer.load to resume)")
    return 0


def bench(args):
    from fastbp.bench.compare import main as bench_main
    return bench_main(args)


def _add_train_options(p):
    p.add_argument("--data", default="digits",
                   help="'digits' (bundled, default) or an .npz with X and y (or Y)")
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
                   help="SGD momentum (default: 0.9 with sgd)")
    p.add_argument("--l2", type=float, default=0.0)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--patience", type=int, default=None,
                   help="stop after this many epochs without a better held-out loss")
    p.add_argument("--backend", default="loop", choices=backends.BACKENDS)
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-fraction", type=float, default=0.2)
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
    try:
        return args.func(args)
    except (ValueError, TypeError, FloatingPointError, RuntimeError, OSError) as exc:
        # Bad options or data, divergence, a missing file or GPU: one line, not a traceback.
        print(f"fastbp: error: {exc}", file=sys.stderr)
        return 2

"""``fastbp bench``: loop kernels against their rivals, side by side in one process.

Every contender trains the same network (same initial weights, same data, same sample
order where it has one) for one epoch per timing; timings alternate between contenders
and the best of ``--repeat`` counts, so a noisy neighbour hurts all alike. fastbp's and
FANN's epochs are timed as they time themselves (``History.seconds``; around
``fann_train_epoch``), without once-per-call input checks and conversions; PyTorch's
include its Python loop over batches, which is how it trains. Throughput is
samples per second and GFLOP/s at 6 FLOP per weight per sample (DESIGN.md §4).
"""
import argparse
import os
import sys
import time

import numpy as np

from fastbp.bench import (NETS, SCHEDULES, batch_size, flop_per_sample, network, problem,
                          suites, trainer_options)
from fastbp.bench.harness import alternate, matmul_peak, set_threads
from fastbp.bench.machine import machine_info

# fastbp's backends, then the rivals that run when installed: PyTorch, and the FANN C
# library (through ctypes, fastbp.bench.fann).
CONTENDERS = ["loop", "vectorized", "cuda", "torch", "fann"]
# A contender that would take longer than this per epoch is timed on a prefix of the
# data (at least a few hundred samples), and its rate extrapolated.
_SECONDS_PER_TIMING = 0.5


def add_options(parser):
    """The options of ``fastbp bench``: the suites' (suites.add_options), then the nets
    table's."""
    suites.add_options(parser)
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    parser.add_argument("--schedules", nargs="+", default=None, metavar="S",
                        help="'online', 'full', or a batch size (default: nets suite "
                        f"{' '.join(SCHEDULES)}; sweep suite online 16)")
    parser.add_argument("--backends", nargs="+", default=CONTENDERS, choices=CONTENDERS,
                        metavar="NAME", help="contenders among %(choices)s; unavailable ones "
                        "are skipped (default: all)")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for Numba, BLAS and PyTorch (default: 1)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--repeat", type=int, default=3, help="timings per contender, best counts")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="draw the loop / vectorized speed-up against batch size (matplotlib)")


def _fastbp_contender(backend, net0, schedule, n, threads=None):
    import fastbp
    from fastbp import backends
    if backend == "cuda" and os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        raise RuntimeError("the CUDA simulator checks logic, not speed")
    backends.get(backend)  # raises when unavailable

    def make():
        net = fastbp.Network(net0.layer_sizes, activations=net0.activations,
                             loss=net0.loss_name, dtype=net0.dtype.name)
        net.params[...] = net0.params
        trainer = fastbp.Trainer(net, **trainer_options(schedule, n), learning_rate=0.01,
                                 seed=0, backend=backend, threads=threads)
        # The epoch's own time as fit reports it: without fit's once-per-call input checks.
        return lambda X, y: trainer.fit(X, y, epochs=1).seconds[0], net
    return make


def _prepare(make, X, y):
    """(epoch function, rows to time) of a contender, warmed up on exactly what will be
    timed. An epoch function may return its own seconds; else the call is timed. A
    contender that would take longer than _SECONDS_PER_TIMING per epoch is timed on a
    prefix of the data: a short run on 64 rows estimates its speed, then one epoch on the
    rows to be timed loads every kernel those rows take (a batch of 256, a full batch, the
    threaded kernels...), which 64 rows would not."""
    epoch, _ = make()
    k = min(len(X), 64)
    start = time.perf_counter()
    epoch(X[:k], y[:k])
    per_sample = (time.perf_counter() - start) / k
    m = len(X)
    if per_sample * m > _SECONDS_PER_TIMING:
        m = min(len(X), max(256, int(_SECONDS_PER_TIMING / per_sample)))
    epoch(X[:m], y[:m])  # the timed kernels, warm
    return epoch, m


def _time_all(makes, X, y, repeat):
    """{contender: best seconds per sample} over ``repeat`` rounds of one-epoch timings,
    the contenders alternating within each round so that a noisy neighbour hurts all."""
    def timing(epoch, m):
        def call():
            start = time.perf_counter()
            seconds = epoch(X[:m], y[:m])
            if seconds is None:
                seconds = time.perf_counter() - start
            return seconds / m
        return call
    prepared = {who: _prepare(make, X, y) for who, make in makes.items()}
    runs = alternate({who: timing(epoch, m) for who, (epoch, m) in prepared.items()}, repeat)
    return {who: min(per_sample, default=np.inf) for who, per_sample in runs.items()}


def run(nets, schedules, contenders, threads, dtype, repeat, out=print):
    """Time every contender on every net and schedule; return rows of results."""
    rows = []
    for name in nets:
        sizes, n = NETS[name]
        X, y = problem(sizes, n, dtype)
        net0 = network(sizes, dtype)
        flop = flop_per_sample(net0)
        for schedule in schedules:
            makes = {}
            for who in contenders:
                try:
                    if who == "torch":
                        from fastbp.bench.torch_rival import torch_contender
                        make = torch_contender(net0, schedule)
                    elif who == "fann":
                        from fastbp.bench.fann import fann_contender
                        make = fann_contender(net0, schedule, n)
                    else:
                        make = _fastbp_contender(who, net0, schedule, n, threads)
                except (ImportError, OSError, RuntimeError):
                    continue
                makes[who] = make
            rates = {who: 1.0 / s for who, s in _time_all(makes, X, y, repeat).items()}
            row = dict(net=name, schedule=schedule, threads=threads, rates=rates,
                       gflops={k: v * flop / 1e9 for k, v in rates.items()})
            rows.append(row)
            out(_format_row(row))
    return rows


def _format_row(row):
    rates = row["rates"]
    cells = [f"{row['net']:>15} {row['schedule']:>6}"]
    for who, rate in rates.items():
        cells.append(f"{who} {rate:>12,.0f}/s {row['gflops'][who]:6.1f} GF/s")
    if "loop" in rates:
        for rival in ("vectorized", "torch", "fann"):
            if rival in rates:
                cells.append(f"loop/{rival} {rates['loop'] / rates[rival]:6.2f}x")
    return " | ".join(cells)


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(r["net"] for r in rows):
        pts = [(r, batch_size(r["schedule"], NETS[name][1])) for r in rows
               if r["net"] == name and {"loop", "vectorized"} <= set(r["rates"])]
        pts.sort(key=lambda p: p[1])
        ax.plot([b for _, b in pts], [r["rates"]["loop"] / r["rates"]["vectorized"] for r, _ in pts],
                marker="o", label=name)
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size (1 = online; rightmost = full batch)")
    ax.set_ylabel("speed-up of loop over vectorized NumPy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(args):
    if getattr(args, "plot", None):
        try:
            import matplotlib  # noqa: F401  (checked before minutes of benchmarks)
        except ImportError:
            print("fastbp bench: --plot needs matplotlib (pip install matplotlib, or "
                  "fastbp[bench])", file=sys.stderr)
            return 2
    suite = getattr(args, "suite", "nets")
    if suite != "nets":
        return suites.main(args)
    limited = set_threads(args.threads)
    peak = matmul_peak(args.dtype)
    for line in machine_info(args.threads, args.dtype):
        print(line)
    print(f"BLAS threads: {limited}")
    print(f"NumPy {args.dtype} matrix product peak: {peak:.1f} GFLOP/s")
    rows = run(args.nets, args.schedules or SCHEDULES, args.backends, args.threads,
               args.dtype, args.repeat)
    if args.plot:
        plot(rows, args.plot)
        print(f"plot written to {args.plot}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m fastbp.bench.compare")
    add_options(parser)
    raise SystemExit(main(parser.parse_args()))

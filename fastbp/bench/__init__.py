"""Benchmark harnesses and rivals: ``fastbp bench`` (``compare``), the asv suites in
``benchmarks/`` and ``benchmarks/gpu_vs_torch.py`` share the table of networks and
schedules below. Nothing here is imported by ``import fastbp``.

Modules, each importing only those after it (and this table):

- ``compare``: ``fastbp bench``'s options and entry point, and its default table, the
  nets and schedules above timed one epoch at a time against NumPy, PyTorch and FANN;
- ``suites``: ``fastbp bench --suite fann-data | tiny | sweep``, whole training calls of
  fastbp against FANN, against itself one model at a time and against scikit-learn;
- ``harness``: thread pinning, the matrix-product peak, alternating timings and the
  trials protocol the suites share;
- ``machine``: the CPU, the code Numba generates for it and the versions, printed above
  every table;
- ``torch_rival`` (the same network and SGD in PyTorch) and ``fann`` (the FANN C library
  through ctypes).
"""
import numpy as np

NETS = {  # name: (layer sizes, samples per epoch)
    "64-32-10": ([64, 32, 10], 1797),
    "784-128-10": ([784, 128, 10], 10000),
    "784-512-512-10": ([784, 512, 512, 10], 4096),
}
# A schedule is "online", "full", or a batch size written as a number.
SCHEDULES = ["online", "16", "64", "256", "full"]


def batch_size(schedule, n):
    """Samples per update of a schedule over n samples."""
    return {"online": 1, "full": n}.get(schedule) or int(schedule)


def trainer_options(schedule, n):
    """fastbp.Trainer's ``schedule`` and ``batch_size`` for a schedule over n samples."""
    kind = {"online": "online", "full": "fullbatch"}.get(schedule, "minibatch")
    return dict(schedule=kind, batch_size=batch_size(schedule, n))


def network(sizes, dtype="float32", seed=0):
    """The benchmarks' network: sigmoid hidden layers, softmax + cross-entropy output."""
    import fastbp
    return fastbp.Network(sizes, activations=["sigmoid"] * (len(sizes) - 2) + ["softmax"],
                          loss="cross_entropy", dtype=dtype, seed=seed)


def problem(sizes, n, dtype="float32", seed=0):
    """Seeded synthetic data: inputs (n, D[0]) uniform in [0, 1), labels (n,) in 0..D[L]-1."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, sizes[0])).astype(dtype)
    labels = rng.integers(0, sizes[-1], n)
    return X, labels


def flop_per_sample(net):
    """6 FLOP per weight per training sample (DESIGN.md section 4)."""
    return 6 * sum(W.size for W in net.weights)

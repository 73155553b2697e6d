"""``fastbp bench --suite sweep --models K [K ...]``: many small models at once,
``fastbp.Sweep`` against PyTorch's model-ensembling recipe, side by side in one process.

Both train K models of 64-32-10 (tanh hidden, softmax + cross-entropy) on the bundled
digits' training rows with plain SGD at one learning rate, for the same epochs and batch
size, on ``--threads`` threads:

- fastbp: ``Sweep([64, 32, 10], grid={"seed": range(K)}, ...).fit`` -- K models, each
  with its own initial weights and its own seeded sample order.
- PyTorch: the recipe of its "Model ensembling" tutorial: ``torch.func.stack_module_state``
  over K ``nn.Sequential`` models, ``vmap(grad(loss))`` over their stacked parameters
  with every model given the same batch, and a plain SGD step on the stacked tensors.

The rate is model-samples per second (K x training rows x epochs / seconds); the timed
call is the training alone (the models' construction is in it, scoring is not). GF/s
counts 6 FLOP per weight per model-sample (forward, delta and gradient), as ``fastbp
bench`` does, per core (divided by the threads), and is given as a fraction of the NumPy
1-thread float32 matrix-product peak measured in the same run. The validation accuracy
of the best model of each contender shows that both trained.
"""
import copy
import math
import time

import numpy as np

from fastbp.bench import batch_size, trainer_options
from fastbp.bench.harness import best_of, matmul_peak

SIZES = (64, 32, 10)
LEARNING_RATE = 0.1
# Model-epochs per timed run, so that every K takes a similar time: epochs = this // K.
MODEL_EPOCHS = 256


def weights(sizes=SIZES):
    """Weights (biases left out) of a network of these layer sizes."""
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def fastbp_models(X, y, train, val, schedule, K, threads, learning_rate=LEARNING_RATE):
    """trial(epochs) -> (seconds, best validation accuracy): fastbp.Sweep over K seeds."""
    import fastbp
    options = trainer_options(schedule, len(train))

    def trial(epochs):
        start = time.perf_counter()
        sweep = fastbp.Sweep(list(SIZES), activations=["tanh", "softmax"],
                             loss="cross_entropy", threads=threads,
                             learning_rate=learning_rate, grid={"seed": list(range(K))},
                             **options)
        result = sweep.fit(X[train], y[train], epochs=epochs)
        seconds = time.perf_counter() - start
        scores = [np.mean(net.forward(X[val]).argmax(axis=1) == y[val])
                  for net in result.networks]
        return seconds, float(max(scores))
    return trial


def torch_models(X, y, train, val, schedule, K, learning_rate=LEARNING_RATE):
    """trial(epochs) -> (seconds, best validation accuracy): PyTorch's ensembling recipe
    (stack_module_state + functional_call + vmap(grad(...))) on K models, every model given
    the same batches, plain SGD on the stacked parameters."""
    import torch
    import torch.nn.functional as F
    from torch.func import functional_call, grad, stack_module_state, vmap
    Xt = torch.from_numpy(np.ascontiguousarray(X[train], np.float32))
    yt = torch.from_numpy(np.asarray(y[train], np.int64))
    Xv = torch.from_numpy(np.ascontiguousarray(X[val], np.float32))
    batch = batch_size(schedule, len(train))

    def model(seed):
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(SIZES[0], SIZES[1]), torch.nn.Tanh(),
                                   torch.nn.Linear(SIZES[1], SIZES[2]))

    def trial(epochs):
        models = [model(k) for k in range(K)]
        start = time.perf_counter()
        params, buffers = stack_module_state(models)
        base = copy.deepcopy(models[0]).to("meta")

        def loss(p, b, xb, yb):
            return F.cross_entropy(functional_call(base, (p, b), (xb,)), yb)

        step = vmap(grad(loss), in_dims=(0, 0, None, None))  # (K models) x one batch
        generator = torch.Generator().manual_seed(0)
        for _ in range(epochs):
            order = torch.randperm(len(Xt), generator=generator)
            for lo in range(0, len(Xt), batch):
                rows = order[lo:lo + batch]
                grads = step(params, buffers, Xt[rows], yt[rows])
                with torch.no_grad():
                    for name, p in params.items():
                        p.sub_(grads[name], alpha=learning_rate)
        seconds = time.perf_counter() - start
        with torch.no_grad():
            out = vmap(lambda p, b: functional_call(base, (p, b), (Xv,)))(params, buffers)
        accuracy = (out.argmax(dim=2).numpy() == np.asarray(y[val])).mean(axis=1)
        return seconds, float(accuracy.max())
    return trial


def one_thread_peak():
    """The NumPy float32 matrix-product peak on one thread (BLAS pinned to one thread for
    the measurement where threadpoolctl is installed), in GFLOP/s."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return matmul_peak("float32")
    with threadpool_limits(1):
        return matmul_peak("float32")


def have_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def run_models(models=(16, 64, 256, 1024), schedule="16", epochs=None, threads=2,
               repeat=3, n=None, out=print, torch=None):
    """The table of fastbp.Sweep against PyTorch's ensembling recipe, a row per K in
    ``models``; returns the rows. ``epochs=None``: MODEL_EPOCHS // K (at least 1) per K.
    ``torch=None`` runs PyTorch where it is installed; False leaves it out."""
    from fastbp.bench.suites import sweep_data
    X, y, train, val = sweep_data(n)
    torch = have_torch() if torch is None else torch
    peak = one_thread_peak()
    flop = 6 * weights()
    out(f"K models of {'-'.join(map(str, SIZES))} (tanh, softmax + cross-entropy), SGD at "
        f"rate {LEARNING_RATE}, batch {batch_size(schedule, len(train))}, {len(train)} "
        f"training samples (digits), {threads} thread(s); NumPy float32 1-thread matrix "
        f"product peak {peak:.1f} GFLOP/s")
    out(f"{'K':>5} {'epochs':>6} | {'fastbp.Sweep':>14} {'torch vmap':>14} {'ratio':>7} | "
        f"{'GF/s/core':>9} {'of peak':>7} | {'best val acc: fastbp':>20} {'torch':>6}")
    rows = []
    for K in models:
        E = epochs or max(1, MODEL_EPOCHS // K)
        trials = {"fastbp": fastbp_models(X, y, train, val, schedule, K, threads)}
        if torch:
            trials["torch"] = torch_models(X, y, train, val, schedule, K)
        best = best_of(trials, E, repeat, warmup_epochs=1)
        rate = {name: K * len(train) * E / seconds for name, (seconds, _) in best.items()}
        per_core = rate["fastbp"] * flop / 1e9 / threads
        row = dict(models=K, epochs=E, schedule=schedule, threads=threads, rate=rate,
                   ratio=rate["fastbp"] / rate["torch"] if torch else math.nan,
                   gflops_per_core=per_core, of_peak=per_core / peak, peak=peak,
                   accuracy={name: acc for name, (_, acc) in best.items()})
        rows.append(row)
        t_rate = f"{rate['torch'] / 1e6:12.3f}M" if torch else f"{'-':>14}"
        t_ratio = f"{row['ratio']:6.1f}x" if torch else f"{'-':>7}"
        t_acc = f"{row['accuracy']['torch']:6.3f}" if torch else f"{'-':>6}"
        out(f"{K:>5} {E:>6} | {rate['fastbp'] / 1e6:12.3f}M {t_rate} {t_ratio} | "
            f"{per_core:9.1f} {row['of_peak']:7.0%} | {row['accuracy']['fastbp']:20.3f} "
            f"{t_acc}")
    rival = ("PyTorch: stack_module_state + vmap(grad(...)), the same batches for every model"
             if torch else "PyTorch: not installed, not run")
    out(f"rates in model-samples/s, best of {repeat}, contenders alternating; {rival}")
    return rows

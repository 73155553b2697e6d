"""Sweep: a grid of networks trained at once, each ending where its own fit would.

Every model of a sweep is the pair ``Network(layer_sizes, ..., seed=s)`` +
``Trainer(net, ..., seed=s)`` that its settings describe; the sweep trains them side by
side instead of one after another. Models that share a structure (layer sizes,
activations, loss, dtype, bias, schedule, batch size, optimizer, backend) form a group;
the numbers that differ between them -- seed, learning rate, momentum, l2, the Adam and
RPROP constants, the learning-rate schedule -- travel to the kernels as data. On the
``loop`` backend a group's parameters live side by side in one (K, P) array and each
epoch of all K models is one compiled call, the models spread over the CPU's threads
(``loop.sweep_epoch``), so even tiny networks use every core; groups run one after
another. Each model's epoch is the same compiled code a single ``Trainer.fit`` runs, so a
model ends bit for bit where its own fit ends. Other backends train the models of a group
one after another through ``Trainer.fit``.

With a ``dask.distributed`` client the models are split into chunks, one task per chunk,
and the chunks' results are put back in grid order: the same numbers as a local run.
"""
import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np

from fastbp import _parallel, _validate
from fastbp.network import Network
from fastbp.kernels import codes
from fastbp._session import _threads
from fastbp.trainer import History, Trainer

# Keywords of Network (besides layer_sizes) and of Trainer (besides net); "seed" is both.
NETWORK_KEYS = ("activations", "loss", "dtype", "bias")
TRAINER_KEYS = ("schedule", "batch_size", "learning_rate", "momentum", "nesterov", "l2",
                "shuffle", "backend", "optimizer", "betas", "eps", "etas", "step_sizes",
                "lr_schedule", "threads")
KEYS = ("layer_sizes", "seed") + NETWORK_KEYS + TRAINER_KEYS
# Settings that change what is compiled or how batches are cut: models that differ in one
# of them cannot share a compiled call.
STRUCTURE_KEYS = ("layer_sizes", "activations", "loss", "dtype", "bias", "schedule",
                  "batch_size", "optimizer", "backend", "threads")


@dataclass
class SweepResult:
    """The models of a sweep, in grid order (``itertools.product`` of the grid's values, keys
    in the order given).

    settings : list of dict -- model i's grid values
    history : list of History -- what its fit recorded (``diverged`` set where it diverged)
    networks : list of Network -- its trained network
    trainers : list of Trainer -- its trainer, with the optimizer state, to resume from
    """

    settings: list = field(default_factory=list)
    history: list = field(default_factory=list)
    networks: list = field(default_factory=list)
    trainers: list = field(default_factory=list)

    def __len__(self):
        return len(self.settings)

    def _final(self, i):
        h = self.history[i]
        value = (h.val_loss or h.loss or [math.inf])[-1]
        return value if np.isfinite(value) else math.inf

    def best(self):
        """Index of the model with the lowest final val_loss (loss without validation
        data); diverged models count as infinitely bad."""
        return min(range(len(self)), key=self._final)

    def table(self):
        """One dict per model: its settings, final loss (and val_loss), epochs run, and
        whether it diverged or stopped early. ``pandas.DataFrame(result.table())`` is a
        table."""
        rows = []
        for s, h in zip(self.settings, self.history):
            row = dict(s, loss=h.loss[-1] if h.loss else math.nan)
            if h.val_loss:
                row["val_loss"] = h.val_loss[-1]
            row.update(epochs=h.epochs, diverged=h.diverged, stopped_early=h.stopped_early)
            rows.append(row)
        return rows


class Sweep:
    """Train every combination of a grid of settings, side by side.

    Parameters
    ----------
    layer_sizes : sequence of int
        As for :class:`~fastbp.Network` (may instead be a key of ``grid``).
    grid : dict of str -> sequence, optional
        Setting name -> values to try; the models are the product of the value lists, in
        ``itertools.product`` order of the keys as given. Any keyword of ``Network`` or
        ``Trainer`` may be a key; ``seed`` seeds both the initial weights and the
        shuffling, as ``Network(..., seed=s)`` and ``Trainer(..., seed=s)`` do.
    **fixed
        The settings every model shares: any keyword of ``Network`` or ``Trainer``.

    Examples
    --------
    >>> sweep = Sweep([64, 32, 10], activations=["tanh", "softmax"], loss="cross_entropy",
    ...               schedule="minibatch", batch_size=16,
    ...               grid={"learning_rate": [0.03, 0.1], "seed": [0, 1]})
    >>> len(sweep.settings)
    4
    """

    def __init__(self, layer_sizes=None, grid=None, **fixed):
        grid = {} if grid is None else grid
        if not isinstance(grid, dict):
            raise TypeError(f"grid must be a dict of setting -> list of values; got {grid!r}")
        for key, values in grid.items():
            if key not in KEYS:
                raise ValueError(f"grid key {key!r} is not a keyword of Network or Trainer; "
                                 f"expected one of {sorted(KEYS)}")
            if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
                raise TypeError(f"grid[{key!r}] must be a list of values; got {values!r}")
            if len(values) == 0:
                raise ValueError(f"grid[{key!r}] is empty: the sweep would have no models")
            if key in fixed:
                raise ValueError(f"{key!r} is both a fixed setting and a grid key")
        for key in fixed:
            if key not in KEYS:
                raise TypeError(f"Sweep got an unexpected keyword {key!r}; expected a keyword "
                                f"of Network or Trainer: {sorted(KEYS)}")
        if layer_sizes is None and "layer_sizes" not in grid:
            raise TypeError("Sweep needs layer_sizes, fixed or as a grid key")
        if layer_sizes is not None:
            if "layer_sizes" in grid:
                raise ValueError("'layer_sizes' is both a fixed setting and a grid key")
            fixed["layer_sizes"] = list(layer_sizes)
        self.fixed, self.grid = fixed, {k: list(v) for k, v in grid.items()}
        self.settings = [dict(zip(self.grid, values))
                         for values in itertools.product(*self.grid.values())]
        # Build every model once now: a bad value fails here, before any training.
        for s in self.settings:
            self._model(s)

    def _model(self, setting):
        """(Network, Trainer) of one model, made exactly as a single run makes them."""
        kw = {**self.fixed, **setting}
        seed = kw.get("seed")
        net = Network(kw["layer_sizes"], seed=seed,
                      **{k: kw[k] for k in NETWORK_KEYS if k in kw})
        trainer = Trainer(net, seed=seed, **{k: kw[k] for k in TRAINER_KEYS if k in kw})
        return net, trainer

    def _structure(self, setting):
        kw = {**self.fixed, **setting}
        return tuple(repr(kw.get(k)) for k in STRUCTURE_KEYS)

    def fit(self, X, y, epochs=10, validation_data=None, progress=False, client=None,
            patience=None, sample_weight=None, chunk_size=None):
        """Train every model for ``epochs`` epochs; returns a :class:`SweepResult`.

        X, y, epochs, validation_data, progress, patience, sample_weight mean what they mean
        for :meth:`Trainer.fit`, for every model (early stopping and divergence act per
        model: a diverged model stops with its last finite weights, the others go on).
        client : dask.distributed.Client, optional
            Train on the cluster instead: models in chunks of ``chunk_size`` (default:
            spread evenly over the workers' threads), one task per chunk.
        """
        epochs = _validate.positive_int("epochs", epochs)
        if patience is not None:
            patience = _validate.positive_int("patience", patience)
        # The checks of every structure's networks, before any training: bad data raises
        # here (models of one structure check alike).
        for s in {self._structure(s): s for s in self.settings}.values():
            net, _ = self._model(s)
            Xc, _ = net._inputs(X)
            net._targets(y, Xc.shape[0])
            _validate.as_sample_weight(sample_weight, Xc.shape[0], net.dtype)
            if validation_data is not None:
                _validation(net, validation_data)
        args = (X, y, epochs, validation_data, patience, sample_weight)
        if client is not None:
            parts = _run_on_cluster(self, client, args, chunk_size)
        else:
            bar = _bar(epochs * len(self.settings)) if progress else None
            try:
                parts = self._fit_indices(range(len(self.settings)), *args, bar=bar)
            finally:
                if bar is not None:
                    bar.close()
        result = SweepResult(settings=self.settings)
        for i in range(len(self.settings)):
            net, trainer, history = parts[i]
            result.networks.append(net)
            result.trainers.append(trainer)
            result.history.append(history)
        return result

    def _fit_indices(self, indices, X, y, epochs, validation_data, patience, sample_weight,
                     bar=None):
        """{index: (net, trainer, history)} for these models, group by group."""
        groups = {}
        for i in indices:
            groups.setdefault(self._structure(self.settings[i]), []).append(i)
        out = {}
        for members in groups.values():
            models = [self._model(self.settings[i]) for i in members]
            if models[0][1].kernels.__name__.endswith(".loop"):
                histories = _fit_group(models, X, y, epochs, validation_data, patience,
                                       sample_weight, bar)
            else:
                histories = [_fit_one(trainer, X, y, epochs, validation_data, patience,
                                      sample_weight, bar) for _, trainer in models]
            for i, (net, trainer), history in zip(members, models, histories):
                out[i] = (net, trainer, history)
        return out


def _validation(net, validation_data):
    try:
        X_val, Y_val = validation_data
    except (TypeError, ValueError):
        raise ValueError("validation_data must be a pair (X_val, Y_val)") from None
    X_val, _ = net._inputs(X_val)
    return X_val, net._targets(Y_val, X_val.shape[0])


def _fit_one(trainer, X, y, epochs, validation_data, patience, sample_weight, bar):
    """One model through Trainer.fit (backends without a sweep kernel)."""
    try:
        history = trainer.fit(X, y, epochs=epochs, validation_data=validation_data,
                              patience=patience, sample_weight=sample_weight)
    except FloatingPointError:
        history = getattr(trainer, "history", None) or History()
        history.diverged = True
    if bar is not None:
        bar.update(epochs)
    return history


def _fit_group(models, X, y, epochs, validation_data, patience, sample_weight, bar):
    """The models of one structure on the loop backend: each epoch of all of them in one
    loop.sweep_epoch call. Returns their histories."""
    nets = [net for net, _ in models]
    trainers = [trainer for _, trainer in models]
    net0, tr0 = models[0]
    k = tr0.kernels
    K, P = len(models), net0.n_params
    Xc, _ = net0._inputs(X)
    Yc = net0._targets(y, Xc.shape[0])
    sw = _validate.as_sample_weight(sample_weight, Xc.shape[0], net0.dtype)
    val = None if validation_data is None else _validation(net0, validation_data)
    n = Xc.shape[0]
    batch_size = tr0._batch_size(n)
    rows = k.workspace_rows(batch_size)
    units = int(net0._sizes.sum())
    dtype = net0.dtype
    # The group's arrays, model k in row k.
    params = np.stack([net.params for net in nets])
    state = np.stack([tr.state for tr in trainers])
    steps = np.stack([tr.steps for tr in trainers])
    grad = np.empty((K, P), dtype)
    A, Dl = np.empty((K, rows * units), dtype), np.empty((K, rows * units), dtype)
    cost = np.empty((K, rows))
    Yb = np.empty((K, rows, Yc.shape[1]), dtype)
    Sb = np.empty((K, rows if len(sw) else 0), dtype)
    stats = np.zeros((K, 4))
    orders = np.empty((K, n), np.int64)
    hyper = np.stack([tr._hyper(tr.learning_rate) for tr in trainers])
    active = np.ones(K, bool)
    histories = [History() for _ in range(K)]
    best = [math.inf] * K
    best_params = [None] * K
    opt = codes.OPTIMIZERS[tr0.optimizer]
    for epoch in range(epochs):
        snapshot = params.copy(), state.copy(), steps.copy()
        for i, tr in enumerate(trainers):
            if active[i]:
                # rng.permutation(n)'s draws, as Trainer.fit makes them, in compiled code.
                k.next_order(orders[i], tr.rng, tr.shuffle)
                lr = tr._rate(tr.epoch)  # checked: a finite number >= 0
                hyper[i, codes.H_LR] = lr
                histories[i].learning_rate.append(lr)
        started = time.perf_counter()
        with _threads(tr0.threads), _parallel.parallel_guard():
            k.sweep_epoch(params, state, steps, grad, A, Dl, cost, Yb, Sb, Xc, Yc, sw, orders,
                          active, batch_size, net0._sizes, net0.act_codes, net0.loss_code, opt,
                          hyper, net0.bias, stats)
        seconds = (time.perf_counter() - started) / max(1, int(active.sum()))
        for i, (net, tr) in enumerate(models):
            if not active[i]:
                continue
            h = histories[i]
            if stats[i, 2] or not np.isfinite(params[i]).all():
                # Diverged: back to the weights before this epoch; the others go on.
                params[i], state[i], steps[i] = snapshot[0][i], snapshot[1][i], snapshot[2][i]
                h.learning_rate.pop()
                h.diverged, active[i] = True, False
                continue
            h.seconds.append(seconds)
            h.loss.append(float(stats[i, 0] / stats[i, 3]))
            if val is not None:
                net.params[...] = params[i]
                h.val_loss.append(net.loss(*val, backend="loop"))
            monitored = (h.val_loss or h.loss)[-1]
            tr.epoch += 1
            tr.monitored.append(monitored)
            if monitored < best[i]:
                best[i], h.best_epoch = monitored, epoch
                if patience is not None:
                    best_params[i] = params[i].copy()
            if patience is not None and epoch - h.best_epoch >= patience:
                h.stopped_early, active[i] = True, False
                params[i] = best_params[i]
        if bar is not None:
            bar.update(K)
        if not active.any():
            break
    for i, (net, tr) in enumerate(models):
        net.params[...] = params[i]
        tr.state[...], tr.steps[...] = state[i], steps[i]
    return histories


def _bar(total):
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="model-epoch", dynamic_ncols=True)


def _fit_chunk(sweep, indices, args):
    """A cluster task: these models of the sweep, trained as a local sweep would."""
    return sweep._fit_indices(indices, *args)


def _run_on_cluster(sweep, client, args, chunk_size):
    """Chunks of models as dask tasks; returns {index: (net, trainer, history)}."""
    n_models = len(sweep.settings)
    if chunk_size is None:
        workers = max(1, sum(client.nthreads().values()))
        chunk_size = -(-n_models // workers)
    chunk_size = _validate.positive_int("chunk_size", chunk_size)
    # Models of one structure stay together within a chunk where they can.
    order = sorted(range(n_models), key=lambda i: sweep._structure(sweep.settings[i]))
    chunks = [order[i:i + chunk_size] for i in range(0, n_models, chunk_size)]
    futures = client.map(_fit_chunk, [sweep] * len(chunks), chunks, [args] * len(chunks),
                         pure=False)
    out = {}
    for part in client.gather(futures):
        out.update(part)
    return out

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
model ends bit for bit where its own fit ends. The ``cuda`` backend trains a group the
same way, one block per model in one launch per epoch (``cuda.sweep_epoch``): model k
ends bit for bit where a sweep of it alone ends, and within rounding of its own
``Trainer.fit``. The vectorized backend trains the models one after another through
``Trainer.fit``.

With a ``dask.distributed`` client the models are split into chunks, one task per chunk,
and the chunks' results are put back in grid order: the same numbers as a local run.
"""
from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from fastbp import _cluster, _parallel, _validate
from fastbp.grid import INTERACTING, KEYS, NETWORK_KEYS, STRUCTURE_KEYS, TRAINER_KEYS, Grid
from fastbp.network import Network
from fastbp.kernels import codes
from fastbp._session import interrupts_at_safe_points, numba_threads
from fastbp.history import EpochLog, History
from fastbp.trainer import Trainer

# Memory: the share of the available memory a sweep may use for the arrays of the models
# it trains at once, and what each model costs besides its arrays (its Network, Trainer,
# History and generator as Python objects).
_WORKSPACE_SHARE = 0.25
_MODEL_OVERHEAD = 4096
_PROBE_RNG = np.random.default_rng(0)  # the probes' generator: they never train


@dataclass
class SweepResult:
    """The models of a sweep, in grid order (``itertools.product`` of the grid's values, keys
    in the order given).

    settings : sequence of dict -- model i's grid values
    history : list of History -- what its fit recorded (``diverged`` set where it diverged;
        ``interrupted`` in the partial result of an interrupted sweep)
    networks : list of Network -- its trained network (None for a model an interrupted
        sweep never started)
    trainers : list of Trainer -- its trainer, with the optimizer state, to resume from
        (None where the network is)
    """

    settings: Sequence[dict[str, Any]] = field(default_factory=list)
    history: list[History] = field(default_factory=list)
    networks: list[Network | None] = field(default_factory=list)
    trainers: list[Trainer | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.settings)

    def _final(self, i):
        h = self.history[i]
        value = (h.val_loss or h.loss or [math.inf])[-1]
        return value if np.isfinite(value) else math.inf

    def best(self) -> int:
        """Index of the model with the lowest final val_loss (loss without validation
        data); diverged models count as infinitely bad."""
        return min(range(len(self)), key=self._final)

    def table(self) -> list[dict[str, Any]]:
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

    Notes
    -----
    Every value is checked here (each combination of the few settings that constrain each
    other, every other value once), without building the grid's models: a grid of a
    million models is checked in milliseconds, and ``settings`` is a :class:`Grid` that
    makes each model's dict when asked for it.

    Examples
    --------
    >>> sweep = Sweep([64, 32, 10], activations=["tanh", "softmax"], loss="cross_entropy",
    ...               schedule="minibatch", batch_size=16,
    ...               grid={"learning_rate": [0.03, 0.1], "seed": [0, 1]})
    >>> len(sweep.settings)
    4
    """

    def __init__(self, layer_sizes: Sequence[int] | None = None,
                 grid: Mapping[str, Sequence[Any]] | None = None, **fixed: Any) -> None:
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
        self.settings = Grid(self.grid)
        # A bad value fails here, before any training.
        probe_nets: dict[str, Network] = {}  # one unfilled Network per network setting
        for probe in self._probes():
            self._model(probe, allocate=False, nets=probe_nets)

    def _probes(self):
        """Settings that between them hold every value of the grid, and every combination
        of the values of settings that constrain each other (grid.INTERACTING)."""
        first = {k: v[0] for k, v in self.grid.items()}
        seen = set()
        for keys in INTERACTING:
            keys = [k for k in keys if k in self.grid]
            for values in itertools.product(*(self.grid[k] for k in keys)):
                seen.update(keys)
                yield {**first, **dict(zip(keys, values))}
        for key, values in self.grid.items():
            if key not in seen:
                for value in values:
                    yield {**first, key: value}

    def _model(self, setting, allocate=True, nets=None):
        """(Network, Trainer) of one model, made exactly as a single run makes them; with
        allocate=False one with the same checks and no parameters (to check settings). In
        ``nets``, one Network per network setting: probes share it, models are its fresh()."""
        kw = {**self.fixed, **setting}
        seed = kw.get("seed")
        net_kw = {k: kw[k] for k in NETWORK_KEYS if k in kw}
        key = repr((kw["layer_sizes"], sorted(net_kw.items())))
        nets = {} if nets is None else nets
        if key in nets:
            net = nets[key].fresh(seed) if allocate else nets[key]
        else:
            net = nets[key] = (Network(kw["layer_sizes"], seed=seed, **net_kw) if allocate
                               else Network.zeros(kw["layer_sizes"], **net_kw))
        if not allocate:  # no random draw: the seed checked alone, and the Trainer given
            _validate.seed_value("seed", seed)  # a generator that exists already
            seed = _PROBE_RNG
        trainer = Trainer(net, seed=seed, **{k: kw[k] for k in TRAINER_KEYS if k in kw})
        return net, trainer

    def _structure(self, setting):
        kw = {**self.fixed, **setting}
        return tuple(repr(kw.get(k)) for k in STRUCTURE_KEYS)

    def fit(self, X: ArrayLike, y: ArrayLike, epochs: int = 10,
            validation_data: tuple[ArrayLike, ArrayLike] | None = None, progress: bool = False,
            client: Any = None, patience: int | None = None,
            sample_weight: ArrayLike | None = None, chunk_size: int | None = None
            ) -> SweepResult:
        """Train every model for ``epochs`` epochs; returns a :class:`SweepResult`.

        X, y, epochs, validation_data, progress, patience, sample_weight mean what they mean
        for :meth:`Trainer.fit`, for every model (early stopping and divergence act per
        model: a diverged model stops with its last finite weights, the others go on).
        client : dask.distributed.Client, optional
            Train on the cluster instead: models in chunks of ``chunk_size`` (default:
            spread evenly over the workers' threads), one task per chunk. The workers must
            have fastbp installed; a closed client, workers without fastbp, or a cluster
            that has lost all its workers for ``_cluster.WORKERS_LOST_S`` seconds raise
            RuntimeError.
        chunk_size : int, optional
            Locally: at most this many models of a group train at once (default: as many
            as fit in a quarter of the available memory).

        Raises
        ------
        MemoryError
            Before any training, when the trained models alone (each one's network and
            optimizer state, which the result keeps) would not fit in the available
            memory; the message gives the sizes.
        KeyboardInterrupt
            Ctrl-C stops the sweep after the epoch (or model) running: the exception's
            ``result`` is a SweepResult of every model in grid order, each with the epochs
            it finished (``history[i].interrupted``; models never started have empty
            histories and no network).
        """
        epochs = _validate.positive_int("epochs", epochs)
        if patience is not None:
            patience = _validate.positive_int("patience", patience)
        if chunk_size is not None:
            chunk_size = _validate.positive_int("chunk_size", chunk_size)
        # The checks of every structure's networks, before any training: bad data raises
        # here (models of one structure check alike).
        groups = self._groups()
        for first in (members[0] for members in groups.values()):
            net, _ = self._model(self.settings[first], allocate=False)
            Xc, _ = net.as_inputs(X)
            net.as_targets(y, Xc.shape[0])
            _validate.as_sample_weight(sample_weight, Xc.shape[0], net.dtype)
            if validation_data is not None:
                _validation(net, validation_data)
        plan = self._plan(groups, Xc.shape[0], chunk_size)
        args = (X, y, epochs, validation_data, patience, sample_weight)
        out: dict[int, tuple[Network, Trainer, History]] = {}
        try:
            with interrupts_at_safe_points() as check:
                if client is not None:
                    # Models of one structure stay together within a chunk where they can.
                    order = [i for members in groups.values() for i in members]
                    _cluster.run(client, _fit_chunk, self, order, args, chunk_size, out,
                                 check)
                else:
                    bar = _bar(epochs * len(self.settings)) if progress else None
                    try:
                        for indices in plan:
                            self._fit_indices(indices, *args, bar=bar, out=out, check=check)
                    finally:
                        if bar is not None:
                            bar.close()
        except KeyboardInterrupt as exc:
            exc.result = self._result(out, partial=True)  # type: ignore[attr-defined]
            raise
        return self._result(out)

    def _result(self, out, partial=False):
        result = SweepResult(settings=self.settings)
        for i in range(len(self.settings)):
            if i in out:
                net, trainer, history = out[i]
            else:
                net, trainer, history = None, None, History(interrupted=partial)
            if partial:
                history.interrupted = True
            result.networks.append(net)
            result.trainers.append(trainer)
            result.history.append(history)
        return result

    def _groups(self):
        """{structure: [model indices]}, in grid order within each group: from the digits
        of the model indices in the grid's structure keys, without making every model's
        settings (a million-model grid is grouped in milliseconds)."""
        index = np.arange(len(self.settings), dtype=np.int64)
        keys = self.settings.keys
        radices = [len(v) for v in self.settings.values]
        strides = [math.prod(radices[k + 1:]) for k in range(len(keys))]
        digits = {key: index // stride % radix
                  for key, stride, radix in zip(keys, strides, radices)
                  if key in STRUCTURE_KEYS}
        if not digits:
            return {self._structure(self.settings[0]): index.tolist()}
        combos = np.stack(list(digits.values()), axis=1)
        unique, which = np.unique(combos, axis=0, return_inverse=True)
        groups = {}
        for g, combo in enumerate(unique):
            setting = self.settings[int(index[which.ravel() == g][0])]
            members = index[which.ravel() == g].tolist()
            groups.setdefault(self._structure(setting), []).extend(members)
        for members in groups.values():
            members.sort()
        return groups

    def _plan(self, groups, n_samples, chunk_size):
        """The chunks of model indices that train at once, after checking that the trained
        models fit in memory (MemoryError if not)."""
        available = _available_memory()
        keep, chunks = 0, []
        for members in groups.values():
            net, trainer = self._model(self.settings[members[0]], allocate=False)
            per_model, workspace = _model_bytes(net, trainer, n_samples)
            keep += per_model * len(members)
            size = chunk_size or max(1, int(available * _WORKSPACE_SHARE // max(1, workspace)))
            chunks += [members[k:k + size] for k in range(0, len(members), size)]
        if available and keep > 0.8 * available:
            raise MemoryError(
                f"this sweep of {len(self.settings):,} models would keep "
                f"{_gib(keep)} of networks and optimizer states in its result, more than "
                f"the {_gib(available)} of memory available; sweep fewer models at once "
                "(split the grid), or smaller networks")
        return chunks

    def _fit_indices(self, indices, X, y, epochs, validation_data, patience, sample_weight,
                     bar=None, out=None, check=None):
        """{index: (net, trainer, history)} for these models, group by group (into
        ``out``, model by model as they finish, so an interrupted sweep keeps them)."""
        out = {} if out is None else out
        check = check or (lambda: None)
        groups = {}
        for i in indices:
            groups.setdefault(self._structure(self.settings[i]), []).append(i)
        for members in groups.values():
            made = {}
            models = [self._model(self.settings[i], nets=made) for i in members]
            for i, (net, trainer) in zip(members, models):
                out[i] = (net, trainer, History())  # started: an interrupt keeps them
            n = np.shape(X)[0]
            for _, trainer in models:
                trainer.resolve_backend(trainer.batch_rows(n))  # backend="auto": per group
            if hasattr(models[0][1].kernels, "sweep_epoch"):  # loop, cuda: many per call
                histories = _fit_group(models, X, y, epochs, validation_data, patience,
                                       sample_weight, bar, check,
                                       [out[i][2] for i in members])
            else:
                histories = []
                for i, (_, trainer) in zip(members, models):
                    histories.append(_fit_one(trainer, X, y, epochs, validation_data,
                                              patience, sample_weight, bar))
                    out[i] = (*out[i][:2], histories[-1])
                    check()
            for i, (net, trainer), history in zip(members, models, histories):
                out[i] = (net, trainer, history)
        return out


def _gib(n):
    """Bytes, as people read them."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def _available_memory():
    """Bytes of memory available to this process (Linux: MemAvailable), or 0 unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return 0


def _model_bytes(net, trainer, n_samples):
    """(bytes the result keeps per model, bytes a model's arrays take while it trains)."""
    b, P = net.dtype.itemsize, net.n_params
    units, d_out = sum(net.layer_sizes), net.layer_sizes[-1]
    keep = 3 * P * b + _MODEL_OVERHEAD  # params and the (2, P) optimizer state
    rows = _sweep_rows(trainer.kernels, trainer.batch_rows(n_samples))
    # Stacked params, state, grad, the epoch's snapshot of them, the best epoch's params;
    # A and Dl, costs, targets, weights; the sample order; gemm's work array.
    work = (9 * P + 2 * rows * units + rows * (d_out + 1)) * b + 8 * (rows + n_samples)
    from fastbp.kernels import loop_gemm
    w = loop_gemm.work_for(net.layer_sizes, net.params[:1], rows)
    return keep, work + (0 if w is None else w.nbytes)


def _sweep_rows(kernels, batch_size):
    """Rows of the host workspaces a backend's sweep_epoch needs per model (cuda keeps its
    own on the GPU: none)."""
    return getattr(kernels, "sweep_workspace_rows", kernels.workspace_rows)(batch_size)


def _validation(net, validation_data):
    """(X_val as given, Y_val as the kernels take it), both checked: Network.loss applies
    the network's input scaling to X_val itself."""
    try:
        X_val, Y_val = validation_data
    except (TypeError, ValueError):
        raise ValueError("validation_data must be a pair (X_val, Y_val)") from None
    n = net.as_inputs(X_val)[0].shape[0]
    return X_val, net.as_targets(Y_val, n)


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


def _fit_group(models, X, y, epochs, validation_data, patience, sample_weight, bar, check,
               histories):
    """The models of one structure on the loop backend: each epoch of all of them in one
    loop.sweep_epoch call, filling ``histories``; ``check`` after each epoch may raise
    KeyboardInterrupt, with every model at the end of an epoch. Returns the histories."""
    nets = [net for net, _ in models]
    trainers = [trainer for _, trainer in models]
    net0, tr0 = models[0]
    k = tr0.kernels
    K, P = len(models), net0.n_params
    Xc, _ = net0.as_inputs(X)
    Yc = net0.as_targets(y, Xc.shape[0])
    sw = _validate.as_sample_weight(sample_weight, Xc.shape[0], net0.dtype)
    val = None if validation_data is None else _validation(net0, validation_data)
    n = Xc.shape[0]
    batch_size = tr0.batch_rows(n)
    rows = _sweep_rows(k, batch_size)
    sizes = np.array(net0.layer_sizes, np.int64)  # writable: one kernel specialization
    units = int(sizes.sum())
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
    orders = np.zeros((K, n), np.int64)
    hyper = np.stack([tr.hyperparameters() for tr in trainers])
    active = np.ones(K, bool)
    logs = [EpochLog(tr, h, patience) for tr, h in zip(trainers, histories)]
    opt = codes.OPTIMIZERS[tr0.optimizer]

    def write_back():
        for i, (net, tr) in enumerate(models):
            net.params[...] = params[i]
            tr.state[...], tr.steps[...] = state[i], steps[i]

    with numba_threads(tr0.threads), _parallel.parallel_guard():
        # Compile (or load) the sweep's kernels on no active model: not timed.
        k.sweep_epoch(params, state, steps, grad, A, Dl, cost, Yb, Sb, Xc, Yc, sw, orders,
                      np.zeros(K, bool), batch_size, sizes, net0.act_codes,
                      net0.loss_code, opt, hyper, net0.bias, stats)
    try:
        for epoch in range(epochs):
            snapshot = params.copy(), state.copy(), steps.copy()
            for i, tr in enumerate(trainers):
                if active[i]:
                    # rng.permutation(n)'s draws, as Trainer.fit makes them, in compiled code.
                    k.next_order(orders[i], tr.rng, tr.shuffle)
                    hyper[i, codes.H_LR] = tr.next_rate()  # checked: a finite number >= 0
            started = time.perf_counter()
            with numba_threads(tr0.threads), _parallel.parallel_guard():
                k.sweep_epoch(params, state, steps, grad, A, Dl, cost, Yb, Sb, Xc, Yc, sw,
                              orders, active, batch_size, sizes, net0.act_codes,
                              net0.loss_code, opt, hyper, net0.bias, stats)
            seconds = (time.perf_counter() - started) / max(1, int(active.sum()))
            for i, (net, tr) in enumerate(models):
                if not active[i]:
                    continue
                if stats[i, 2] or not np.isfinite(params[i]).all():
                    # Diverged: back to the weights before this epoch; the others go on.
                    params[i], state[i], steps[i] = (snapshot[0][i], snapshot[1][i],
                                                     snapshot[2][i])
                    histories[i].diverged, active[i] = True, False
                    continue
                val_loss = None
                if val is not None:
                    net.params[...] = params[i]
                    val_loss = net.loss(*val, backend="loop")
                if logs[i].record(float(hyper[i, codes.H_LR]), float(stats[i, 0] / stats[i, 3]),
                                  seconds, val_loss, params[i]):
                    logs[i].stop_early(params[i])
                    active[i] = False
            if bar is not None:
                bar.update(K)
            if not active.any():
                break
            check()
    finally:
        write_back()  # every model as its last finished epoch left it
    return histories


def _bar(total):
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="model-epoch", dynamic_ncols=True)


def _fit_chunk(sweep, indices, args):
    """A cluster task: these models of the sweep, trained as a local sweep would."""
    return sweep._fit_indices(indices, *args)

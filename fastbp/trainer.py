"""Trainer: online, mini-batch and full-batch gradient descent over a Network."""
import math
import time
from dataclasses import dataclass, field

import numpy as np

from fastbp import _validate, backends

SCHEDULES = ("online", "minibatch", "fullbatch")

# Samples per compiled call within an epoch (rounded to whole batches): progress updates
# and the divergence snapshot happen at this granularity, never per sample.
_SAMPLES_PER_CALL = 1 << 16


@dataclass
class History:
    """What ``Trainer.fit`` records, one entry per epoch.

    loss : mean per-sample cost of the samples seen in the epoch, each computed in the
        forward pass that produced its gradient (no L2 term).
    val_loss : mean per-sample cost on ``validation_data`` after the epoch (empty without it).
    seconds : wall time of each epoch's training, validation excluded.
    best_epoch : index of the epoch with the lowest monitored loss (val_loss if given).
    stopped_early : True when early stopping or the callback ended training.
    """

    loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False

    @property
    def epochs(self):
        return len(self.loss)


class Trainer:
    """Gradient descent on a :class:`~fastbp.Network` with one of three update schedules.

    Parameters
    ----------
    net : Network
        Trained in place.
    schedule : {"online", "minibatch", "fullbatch"}, default "minibatch"
        ``online``: one update per sample; ``minibatch``: one per ``batch_size`` samples
        (the last batch may be smaller); ``fullbatch``: one per epoch.
    batch_size : int, default 32
        Used by ``minibatch`` only.
    learning_rate : float, default 0.1
        Step size, > 0.
    momentum : float, default 0.0
        Classical momentum in [0, 1), as ``torch.optim.SGD``: ``v <- momentum * v + g``,
        ``w <- w - learning_rate * v``.
    nesterov : bool, default False
        Nesterov momentum (``w <- w - learning_rate * (g + momentum * v)``); needs momentum > 0.
    l2 : float, default 0.0
        L2 penalty ``(l2 / 2) * sum W**2`` on the weights (not the biases); adds ``l2 * W``
        to the weight gradient.
    shuffle : bool, default True
        Visit the samples in a new random order every epoch.
    seed : int or None
        Seeds the shuffling: the same seed and initial weights give bit-identical results.
    backend : {"loop", "vectorized", "cuda"}, default "loop"
        ``loop`` runs every epoch inside compiled code, whatever the schedule.
    """

    def __init__(self, net, schedule="minibatch", batch_size=32, learning_rate=0.1,
                 momentum=0.0, nesterov=False, l2=0.0, shuffle=True, seed=None,
                 backend="loop"):
        self.net = net
        self.schedule = _validate.choice("schedule", schedule, SCHEDULES)
        self.batch_size = _validate.positive_int("batch_size", batch_size)
        self.learning_rate = _validate.real("learning_rate", learning_rate, 0.0, False)
        self.momentum = _validate.real("momentum", momentum, 0.0, True, high=1.0)
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.l2 = _validate.real("l2", l2, 0.0)
        self.shuffle = bool(shuffle)
        self.backend = backend
        self.kernels = backends.get(backend)
        self.rng = np.random.default_rng(seed)
        # Optimizer state, laid out like net.params; kept across fit() and step() calls.
        self.velocity = np.zeros_like(net.params)

    def _batch_size(self, n):
        return {"online": 1, "minibatch": min(self.batch_size, n), "fullbatch": n}[self.schedule]

    def step(self, X, Y):
        """Exactly one update from the mean gradient over the rows of X; returns their mean cost."""
        X, _ = self.net._inputs(X)
        Y = self.net._targets(Y, X.shape[0])
        n = X.shape[0]
        total, seen = _Session(self, X, Y, n).run(np.arange(n, dtype=np.int64))
        return total / seen

    def fit(self, X, Y, epochs=10, validation_data=None, progress=False, patience=None,
            restore_best=True, callback=None):
        """Train for ``epochs`` passes over (X, Y).

        Parameters
        ----------
        X : array_like (n, D[0])
        Y : array_like (n, D[L]), or 1-D integer class labels for a softmax output
        epochs : int
        validation_data : (X_val, Y_val), optional
            Evaluated after every epoch into ``history.val_loss``.
        progress : bool
            Show a tqdm progress bar with the running loss.
        patience : int, optional
            Early stopping: stop after this many epochs without a new best monitored
            loss (``val_loss`` when validation data is given, else ``loss``).
        restore_best : bool, default True
            With ``patience``, put back the weights of the best epoch when stopping.
        callback : callable(epoch, history) -> bool, optional
            Called after every epoch; returning True stops training.

        Returns
        -------
        History

        Raises
        ------
        FloatingPointError
            If the loss becomes NaN or infinite; the network keeps its last finite weights.
        """
        net = self.net
        epochs = _validate.positive_int("epochs", epochs)
        if patience is not None:
            patience = _validate.positive_int("patience", patience)
        X, _ = net._inputs(X)
        Y = net._targets(Y, X.shape[0])
        if validation_data is not None:
            try:
                X_val, Y_val = validation_data
            except (TypeError, ValueError):
                raise ValueError("validation_data must be a pair (X_val, Y_val)") from None
            X_val, _ = net._inputs(X_val)
            Y_val = net._targets(Y_val, X_val.shape[0])
        n = X.shape[0]
        batch_size = self._batch_size(n)
        history = History()
        best, best_params = math.inf, None
        session = _Session(self, X, Y, batch_size)
        bar = _progress_bar(epochs * n) if progress else None
        try:
            for epoch in range(epochs):
                order = (self.rng.permutation(n) if self.shuffle else np.arange(n)).astype(np.int64)
                started = time.perf_counter()
                on_chunk = None if bar is None else (
                    lambda k, running: (bar.update(k), bar.set_postfix(loss=f"{running:.4g}")))
                try:
                    total, seen = session.run(order, on_chunk)
                except FloatingPointError as exc:
                    raise FloatingPointError(f"epoch {epoch}: {exc}") from None
                history.seconds.append(time.perf_counter() - started)
                history.loss.append(total / seen)
                if validation_data is not None:
                    history.val_loss.append(net.loss(X_val, Y_val, backend=self.backend))
                monitored = (history.val_loss or history.loss)[-1]
                if monitored < best:
                    best, history.best_epoch = monitored, epoch
                    if patience is not None and restore_best:
                        best_params = net.params.copy()
                if bar is not None:
                    bar.set_postfix({k: f"{v[-1]:.4g}" for k, v in
                                     (("loss", history.loss), ("val_loss", history.val_loss)) if v})
                if callback is not None and callback(epoch, history):
                    history.stopped_early = True
                    break
                if patience is not None and epoch - history.best_epoch >= patience:
                    history.stopped_early = True
                    if best_params is not None:
                        net.params[...] = best_params
                    break
        finally:
            if bar is not None:
                bar.close()
        return history


class _Session:
    """The arrays of one ``fit`` or ``step``, where the backend's kernels want them (on the
    GPU for cuda): data, parameters, optimizer state and workspaces, allocated once."""

    def __init__(self, trainer, X, Y, batch_size):
        self.trainer, self.net, self.kernels = trainer, trainer.net, trainer.kernels
        k, net = self.kernels, self.net
        self.batch_size = batch_size
        self.X, self.Y = k.to_device(X), k.to_device(Y)
        self.params, self.velocity = k.to_device(net.params), k.to_device(trainer.velocity)
        units = int(net.sizes.sum())
        rows = k.workspace_rows(batch_size) if hasattr(k, "workspace_rows") else batch_size
        self.A = k.empty(rows * units, net.dtype)     # activations of a batch (or a piece)
        self.Dl = k.empty(rows * units, net.dtype)    # deltas, same layout
        self.cost = k.empty(rows, np.float64)         # per-sample costs
        self.Yb = k.empty((rows, Y.shape[1]), net.dtype)
        self.grad = k.empty(net.params.shape, net.dtype)
        self.stats = k.empty(3, np.float64)
        self.stats_host = np.zeros(3)

    def _sync(self):
        """Bring parameters and optimizer state back into the Network and the Trainer."""
        self.kernels.to_host(self.params, self.net.params)
        self.kernels.to_host(self.velocity, self.trainer.velocity)

    def run(self, order, on_chunk=None):
        """Train over the samples in ``order`` (int64); return (sum of costs, samples seen).

        The work goes to the kernels in calls of about _SAMPLES_PER_CALL samples (whole
        batches); after each the parameters come back to the host, where divergence is
        checked. Raises FloatingPointError if a cost is not finite, leaving the network
        at its last finite weights.
        """
        k, net, tr = self.kernels, self.net, self.trainer
        per_call = max(1, _SAMPLES_PER_CALL // self.batch_size) * self.batch_size
        total, seen = 0.0, 0
        for start in range(0, len(order), per_call):
            snapshot = net.params.copy(), tr.velocity.copy()
            k.train_epoch(self.params, self.velocity, self.grad, self.A, self.Dl, self.cost,
                          self.Yb, self.X, self.Y, k.to_device(order[start:start + per_call]),
                          self.batch_size, net.sizes, net.act_codes, net.loss_code,
                          tr.learning_rate, tr.momentum, tr.nesterov, tr.l2, net.bias,
                          self.stats)
            stats = k.to_host(self.stats, self.stats_host)
            self._sync()
            total += stats[0]
            seen += int(stats[1])
            finite = np.isfinite(net.params).all()
            if stats[2] or not finite:
                if not finite:
                    net.params[...], tr.velocity[...] = snapshot
                    self.params = k.to_device(net.params)
                    self.velocity = k.to_device(tr.velocity)
                raise FloatingPointError(
                    f"the loss is not finite after {seen} samples; training diverged "
                    f"(try a smaller learning_rate). The network keeps its last finite "
                    f"weights.")
            if on_chunk is not None:
                on_chunk(int(stats[1]), total / max(seen, 1))
        return float(total), seen


def _progress_bar(total):
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="sample", unit_scale=True, dynamic_ncols=True)

"""A network's shape and the layout of its parameters: layer sizes, activations and loss
checked (for ``Network(...)``, ``Network.zeros`` and ``Network.load`` alike), the
parameter count P, the per-layer views ``W[m], b[m]`` of the flat (P,) buffer, and the
initial draw of the weights."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fastbp import _validate
from fastbp.kernels import codes

# Largest layer and largest network accepted (also from files: a file cannot make load
# allocate more than MAX_PARAMS parameters, and only after its params entry has that size).
MAX_UNITS = (1 << 31) - 1
MAX_PARAMS = 1 << 40


def n_params(sizes: Sequence[int]) -> int:
    """P for layer sizes, refused above MAX_PARAMS (Python integers: no overflow)."""
    n = sum(int(b) * (int(a) + 1) for a, b in zip(sizes[:-1], sizes[1:]))
    if n > MAX_PARAMS:
        raise ValueError(f"layer_sizes {list(sizes)} make {n} parameters; at most "
                         f"{MAX_PARAMS} are supported")
    return n


def check_sizes(layer_sizes: Any) -> list[int]:
    """``layer_sizes`` as a list of Python ints, checked: at least two, each in
    1..MAX_UNITS, at most MAX_PARAMS parameters in all."""
    try:
        sizes = list(layer_sizes)
    except TypeError:
        raise TypeError("layer_sizes must be a sequence of integers; "
                        f"got {layer_sizes!r}") from None
    if len(sizes) < 2:
        raise ValueError(f"layer_sizes needs at least an input and an output size; got {sizes}")
    for d in sizes:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise ValueError(f"layer_sizes must be positive integers; got {sizes}")
        if d > MAX_UNITS:
            raise ValueError(f"layer_sizes must be at most {MAX_UNITS} units per layer; "
                             f"got {sizes}")
    sizes = [int(d) for d in sizes]
    n_params(sizes)
    return sizes


def check_activations(activations: str | Sequence[str], n_layers: int, n_out: int
                      ) -> list[str]:
    """One canonical activation name per weight layer (``"linear"`` becomes
    ``"identity"``), checked: softmax on the output layer only, with at least 2 outputs."""
    names = [activations] * n_layers if isinstance(activations, str) else list(activations)
    if len(names) != n_layers:
        raise ValueError(f"activations has {len(names)} names; the network has {n_layers} "
                         "weight layers (give one name, or one per layer)")
    for name in names:
        _validate.choice("activation", name, codes.ACTIVATIONS)
    names = [codes.ACTIVATION_NAMES[codes.ACTIVATIONS[a]] for a in names]
    if "softmax" in names[:-1]:
        raise ValueError("activations: 'softmax' is allowed on the output layer only")
    if names[-1] == "softmax" and n_out < 2:
        raise ValueError("a 'softmax' output needs at least 2 outputs")
    return names


def check_loss(loss: str, activations: Sequence[str]) -> str:
    """The loss's name, checked against the (checked) activations: cross-entropy needs a
    softmax or sigmoid output layer."""
    loss = _validate.choice("loss", loss, codes.LOSSES)
    if loss == "cross_entropy" and activations[-1] not in ("softmax", "sigmoid"):
        raise ValueError("loss='cross_entropy' needs a 'softmax' or 'sigmoid' output "
                         f"layer; got {activations[-1]!r}")
    return loss


def views(flat: NDArray[Any], layer_sizes: Sequence[int]
          ) -> Iterator[tuple[NDArray[Any], NDArray[Any]]]:
    """(W[m] of shape (D[m], D[m-1]), b[m] of shape (D[m],)) for m = 1..L: views of a
    (P,) buffer laid out ``W[1], b[1], W[2], b[2], ...``, each ``W`` row-major."""
    off = 0
    for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:]):
        W = flat[off:off + n_out * n_in].reshape(n_out, n_in)
        off += n_out * n_in
        yield W, flat[off:off + n_out]
        off += n_out


def initialize(weights: list[NDArray[Any]], biases: list[NDArray[Any]],
               activations: Sequence[str], rng: np.random.Generator) -> None:
    """Draw the weights in place from ``rng`` -- Glorot/Xavier uniform, He normal for
    relu layers -- and zero the biases."""
    for W, b, act in zip(weights, biases, activations):
        n_out, n_in = W.shape
        if act == "relu":
            W[...] = rng.normal(0.0, np.sqrt(2.0 / n_in), W.shape)
        else:
            limit = np.sqrt(6.0 / (n_in + n_out))
            W[...] = rng.uniform(-limit, limit, W.shape)
        b[...] = 0

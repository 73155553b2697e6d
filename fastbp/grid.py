"""The settings of a grid of models: which keywords a grid may hold (``KEYS``), which of
them change a model's structure (``STRUCTURE_KEYS``), the models' settings made on demand
(``Grid``), and a grid written as text (``parse_grid``, what ``fastbp train --sweep``
takes). ``fastbp.Sweep`` trains them."""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, overload

from fastbp.schedules import SCHEDULES as LR_SCHEDULES

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
# The only settings whose validity depends on each other (nesterov needs momentum, momentum
# needs SGD; the activations must fit the layers and the loss the output): their values
# are checked in every combination, every other key's values one by one.
INTERACTING = (("momentum", "nesterov", "optimizer"), ("layer_sizes", "activations", "loss"))


class Grid(Sequence[dict[str, Any]]):
    """The settings of a grid's models, one dict per model, made when asked for: model i
    of ``itertools.product`` order of the values, keys in the order given, without a list
    of every combination (a grid of 10^6 models costs nothing until it trains)."""

    def __init__(self, grid: Mapping[str, Iterable[Any]]) -> None:
        self.keys = list(grid)
        self.values = [list(v) for v in grid.values()]
        self._count = math.prod(len(v) for v in self.values)

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, i: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, i: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self._count))]
        i = int(i)
        if i < 0:
            i += self._count
        if not 0 <= i < self._count:
            raise IndexError(f"model {i} of a grid of {self._count}")
        setting = {}
        for key, values in zip(reversed(self.keys), reversed(self.values)):
            i, k = divmod(i, len(values))
            setting[key] = values[k]
        return {key: setting[key] for key in self.keys}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    def __repr__(self) -> str:
        return f"Grid({dict(zip(self.keys, self.values))!r}: {self._count} models)"


# The grid text's shorthands for the list-valued layer_sizes and activations, which the
# caller expands: "hidden" (hidden layer sizes, 64 or 64x32) and "activation" (the hidden
# layers' activation).
GRID_TEXT_KEYS = tuple(sorted(set(KEYS) - {"layer_sizes", "activations"}
                              | {"activation", "hidden"}))
# Where one lr_schedule value ends and the next begins: before a schedule's name.
_NEXT_LR_SCHEDULE = re.compile(rf",(?=(?:{'|'.join(LR_SCHEDULES)})\b)")


def parse_grid(text: str, name: str = "grid") -> dict[str, list[Any]]:
    """A grid of settings from text: ``"learning_rate=0.01,0.1 seed=0,1,2"`` ->
    ``{"learning_rate": [0.01, 0.1], "seed": [0, 1, 2]}`` (what ``fastbp train --sweep``
    takes).

    The text is space-separated ``KEY=V1,V2,...``. Keys are keywords of Network or
    Trainer (``KEYS``; a dash may stand for an underscore), with two shorthands in place of
    the list-valued ``layer_sizes`` and ``activations``, for the caller to expand:
    ``hidden`` (hidden layer sizes such as ``64`` or ``64x32``, kept as written) and
    ``activation`` (the hidden layers' activation). Values are read as the int, float,
    ``true``/``false``, ``none`` or text they spell; lr_schedule values, which hold commas
    themselves, are split before each schedule's name. Whether a value suits its key is
    for :class:`Sweep` to check.

    Parameters
    ----------
    text : str
    name : str
        What the text is called in messages (``fastbp train`` says ``--sweep``).

    Raises
    ------
    ValueError
        Naming ``name`` and the token: empty text, a token that is not ``KEY=V1,...``,
        an unknown or repeated key, an empty value, a hidden value that is not layer
        sizes.
    """
    tokens = text.split()
    if not tokens:
        raise ValueError(f"{name} is empty; give KEY=V1,V2 pairs, e.g. "
                         "'learning_rate=0.01,0.1 seed=0,1'")
    grid = {}
    for token in tokens:
        key, sep, values = token.partition("=")
        key = key.replace("-", "_")
        if not sep or not key or not values:
            raise ValueError(f"{name}: {token!r} is not KEY=V1,V2,...")
        if key not in GRID_TEXT_KEYS:
            raise ValueError(f"{name}: {key!r} is not a keyword of Network or Trainer; "
                             f"the grid keys are {', '.join(GRID_TEXT_KEYS)}")
        if key in grid:
            raise ValueError(f"{name}: {key!r} is given twice")
        parts = (_NEXT_LR_SCHEDULE.split(values) if key == "lr_schedule"
                 else values.split(","))
        if not all(parts):
            raise ValueError(f"{name}: {token!r} has an empty value")
        grid[key] = [_grid_value(p) for p in parts]
        if key == "hidden":
            for value in grid[key]:
                sizes = str(value).split("x")
                if not all(s.isdigit() and int(s) > 0 for s in sizes):
                    raise ValueError(f"{name}: hidden values are layer sizes such as 64 "
                                     f"or 64x32; got {value!r}")
    return grid


def _grid_value(text):
    """A value of a grid's text as the int, float, bool, None or text it spells."""
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

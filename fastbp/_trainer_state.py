"""The Trainer's file: the entries ``Trainer.save`` writes beside the network's (its
settings, optimizer state, update and epoch counts, monitored losses, shuffling
generator) and ``Trainer.load``'s checked reading of them back into a Trainer."""
from __future__ import annotations

import json
import os
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from fastbp import backends, schedules
from fastbp._npz import NpzReader

if TYPE_CHECKING:
    from fastbp.network import Network
    from fastbp.trainer import Trainer


def entries(trainer: Trainer) -> dict[str, NDArray[Any]]:
    """The named arrays a trainer's file holds besides its network's (``net.arrays()``)."""
    settings = dict(schedule=trainer.schedule, batch_size=trainer.batch_size,
                    learning_rate=trainer.learning_rate, momentum=trainer.momentum,
                    nesterov=trainer.nesterov, l2=trainer.l2, shuffle=trainer.shuffle,
                    optimizer=trainer.optimizer, betas=trainer.betas, eps=trainer.eps,
                    etas=trainer.etas, step_sizes=trainer.step_sizes,
                    lr_schedule=trainer.lr_schedule.to_dict(), backend=trainer.backend,
                    threads=trainer.threads)
    return dict(trainer_settings=np.array(json.dumps(settings)),
                trainer_state=trainer.state, trainer_steps=trainer.steps,
                trainer_epoch=np.array(trainer.epoch),
                trainer_monitored=np.array(trainer.monitored, np.float64),
                trainer_rng=np.array(json.dumps(trainer.rng.bit_generator.state)))


def read(cls: type[Trainer], reader: NpzReader, net: Network, backend: str | None,
         path: str | os.PathLike[str]) -> Trainer:
    """A ``cls`` training ``net`` from the trainer entries of an open NpzReader (after the
    network's), every entry checked before it is read; ``backend`` overrides the saved
    one. The optimizer state, the one large entry, is read last, into the trainer's own
    buffer. ValueError for anything unsound (the caller names the file)."""
    settings = json.loads(reader.text("trainer_settings"))
    if not isinstance(settings, dict):
        raise ValueError("trainer_settings is not a mapping")
    if not isinstance(settings.get("lr_schedule"), dict):
        raise ValueError("trainer_settings has no lr_schedule mapping")
    settings["lr_schedule"] = schedules.from_dict(settings["lr_schedule"])
    if backend is not None:
        settings["backend"] = backend
    elif settings.get("backend") == "cuda":
        try:
            backends.get("cuda")
        except RuntimeError as exc:
            warnings.warn(f"{path} was saved with backend='cuda', which is not available "
                          f"here ({exc}); it loads onto backend='loop'", RuntimeWarning,
                          stacklevel=4)
            settings["backend"] = "loop"
    # The optimizer state, the one large entry, is checked here (shape and dtype from the
    # network, size against the file) and read last, into the trainer's own buffer.
    reader.check("trainer_state", (2, net.n_params), net.dtype)
    steps = reader.array("trainer_steps", kinds="iu", ndim=1, max_items=1)
    if steps.shape != (1,) or int(steps[0]) < 0:
        raise ValueError(f"trainer_steps must be one count >= 0; got {steps!r}")
    epoch = reader.integer("trainer_epoch", low=0)
    monitored = reader.array("trainer_monitored", kinds="f", ndim=1, max_items=1 << 24,
                             max_bytes=8 << 24)
    if np.isnan(monitored).any():
        raise ValueError("trainer_monitored holds NaN")
    if len(monitored) != epoch:  # one monitored loss per epoch trained
        raise ValueError(f"trainer_monitored has {len(monitored)} losses for {epoch} epochs")
    rng_state = json.loads(reader.text("trainer_rng"))
    trainer = cls(net, **settings)
    if not isinstance(rng_state, dict) or (rng_state.get("bit_generator")
                                           != type(trainer.rng.bit_generator).__name__):
        raise ValueError("trainer_rng is not the state of a "
                         f"{type(trainer.rng.bit_generator).__name__} generator")
    trainer.rng.bit_generator.state = rng_state
    reader.array("trainer_state", kinds="f", out=trainer.state)
    if not np.isfinite(trainer.state).all():
        raise ValueError("trainer_state holds NaN or infinite values")
    trainer.steps[...] = steps
    trainer.epoch = epoch
    trainer.monitored = [float(v) for v in monitored]
    return trainer

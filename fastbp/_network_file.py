"""The Network's ``.npz`` file: its format name and version, and ``Network.load``'s
reading of the entries -- settings first, each checked before the next is read; the
input scaling; the parameters last, within the size the settings allow."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from fastbp import _layout, _validate
from fastbp._npz import NpzReader

if TYPE_CHECKING:
    from fastbp.preprocessing import InputScaling

FORMAT = "fastbp.Network"
FORMAT_VERSION = 1


def read_settings(reader: NpzReader) -> tuple[list[int], list[str], str, np.dtype[Any], bool]:
    """(layer sizes, activations, loss, dtype, bias) of the network in an open NpzReader,
    after its format and version are checked; the sizes checked here, the rest by the
    Network built from them."""
    if reader.text("format") != FORMAT:
        raise ValueError(f"format {reader.text('format')!r}")
    version = reader.integer("version")
    if not 1 <= version <= FORMAT_VERSION:
        raise ValueError(f"format version {version} is not one this fastbp reads "
                         f"(1..{FORMAT_VERSION})")
    sizes = reader.array("sizes", kinds="iu", ndim=1, max_items=1024)
    sizes = _layout.check_sizes([int(d) for d in sizes])
    # By name: a file's ">f8" is read as the native float64 the kernels compute in.
    dtype = np.dtype(_validate.as_dtype(reader.text("dtype")).name)
    activations = reader.array("activations", kinds="U", ndim=1, max_items=1024)
    return (sizes, [str(a) for a in activations], reader.text("loss"), dtype,
            reader.boolean("bias"))


def read_input_scaling(reader: NpzReader, n_inputs: int) -> InputScaling | None:
    """The network's input scaling (files of networks with input_scaling), else None."""
    if not reader.has("input_offset"):
        return None
    from fastbp.preprocessing import InputScaling
    shape, f64 = (n_inputs,), np.float64
    return InputScaling(reader.array("input_offset", kinds="f", shape=shape, dtype=f64),
                        reader.array("input_scale", kinds="f", shape=shape, dtype=f64))


def read_params(reader: NpzReader, sizes: list[int], dtype: np.dtype[Any]
                ) -> NDArray[np.floating]:
    """The parameters, a C-contiguous (P,) array of ``dtype`` for layers of ``sizes``: the
    one large entry, its shape and dtype checked before it is allocated."""
    return reader.array("params", kinds="f", shape=(_layout.n_params(sizes),), dtype=dtype)

"""Data for fastbp: the bundled digits, data files, and what a file's targets ask for.

- :func:`load_digits`: the bundled 8x8 handwritten digits.
- :func:`load_fann` / :func:`save_fann`: FANN's training-file format, the format of
  FANN's tutorials and benchmark sets (``.train``, ``.test``, ``.data``).
- :func:`load_csv`: comma-separated values, header row optional.
- :func:`load_npz`: arrays ``X`` and ``y`` (or ``Y``) in a NumPy ``.npz``.
- :func:`load`: any of these, by name or path (the kind from the suffix, else from the
  content, :func:`sniff`) -- what ``fastbp train --data`` reads.
- :func:`prepare`: X and y checked, and the task decided (:func:`infer_task`):
  classification with labels 0..K-1, or regression with an (n, k) target matrix.
- :func:`split_rows`: a seeded split of rows into a training and a held-out part.

A malformed file raises ``ValueError`` naming the path (and the line, for text files).
The text readers stream (:mod:`fastbp._readers`): reading takes little more memory than
the arrays returned. They read numbers as C's ``strtod`` reads decimal ones, as FANN
does, so that a file means the same to fastbp as to FANN or any C program; and they open
regular files only, since a FIFO would block the reader and a device such as
``/dev/zero`` never ends.
"""
from __future__ import annotations

import io
import os
import zipfile
from importlib import resources
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from fastbp import _readers, _textio

__all__ = ["MAX_AUTO_CLASSES", "MAX_AUTO_CLASS_SHARE", "TASKS", "Prepared", "infer_task",
           "load", "load_csv", "load_digits", "load_fann", "load_npz", "prepare",
           "save_fann", "sniff", "split_rows"]


def load_digits(dtype: DTypeLike = "float32") -> tuple[NDArray[np.floating], NDArray[np.int64]]:
    """The 1797 8x8 handwritten digits (UCI; the set scikit-learn also ships).

    Returns
    -------
    X : ndarray (1797, 64) of dtype, pixel intensities scaled to [0, 1]
    y : ndarray (1797,) int64, the digit 0..9
    """
    with resources.files("fastbp").joinpath("data/digits.npz").open("rb") as f:
        data = np.load(f)
        X = data["images"].astype(dtype) / 16
        y = data["labels"].astype(np.int64)
    return X, y


# -- files ---------------------------------------------------------------------------------

def load_fann(path: str | os.PathLike[str], dtype: DTypeLike = "float64"
              ) -> tuple[NDArray[np.floating], NDArray[np.floating]]:
    """Read a training file in FANN's format.

    The format (``fann_save_train`` writes it, ``fann_read_train_from_file`` reads it): a
    header line ``n_samples n_inputs n_outputs``, then for each sample a line of
    ``n_inputs`` values and a line of ``n_outputs`` values, separated by whitespace. As in
    FANN, line breaks between values are not significant; only the count of values is.
    Values are decimal numbers as C's ``strtod`` reads them.

    The file is read in pieces straight into the arrays returned, which the header's
    counts size once (after checking that the file is large enough to hold that many
    values): reading takes little more memory than the arrays.

    Parameters
    ----------
    path : str or path-like
    dtype : data type of the arrays returned, default float64 (the values as written)

    Returns
    -------
    X : ndarray (n_samples, n_inputs)
    Y : ndarray (n_samples, n_outputs)
        Always 2-D, as in the file. FANN classification sets hold one output per class
        (one-hot, 0/1 or -1/1): ``Y.argmax(axis=1)`` gives class labels.

    Raises
    ------
    ValueError
        Naming the path and line: a bad header, a value that is not a finite number, too
        few or too many values for the header's counts. Naming the path: a file that is
        not text (NUL bytes, invalid UTF-8) or not a regular file (a FIFO, a device).
    """
    return _readers.read_fann(path, np.dtype(dtype))


def save_fann(path: str | os.PathLike[str], X: ArrayLike, Y: ArrayLike) -> None:
    """Write (X, Y) as a FANN training file (readable by FANN and :func:`load_fann`).

    Parameters
    ----------
    path : str or path-like
    X : array_like (n_samples, n_inputs)
    Y : array_like (n_samples, n_outputs), or (n_samples,): one output per sample

    Notes
    -----
    Values are written with enough digits to read back exactly in their dtype (float32
    with 9 significant digits, otherwise 17).
    """
    X, Y = np.asarray(X), np.asarray(Y)
    if Y.ndim == 1:
        Y = Y[:, None]
    if X.ndim != 2 or Y.ndim != 2:
        raise ValueError(f"X must be 2-D and Y 1-D or 2-D; got shapes {X.shape} and {Y.shape}")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but Y has {Y.shape[0]}")
    if X.shape[0] == 0 or X.shape[1] == 0 or Y.shape[1] == 0:
        raise ValueError("a FANN training file needs at least one sample, input and output")
    for name, a in (("X", X), ("Y", Y)):
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers; got dtype {a.dtype}")
        if not np.isfinite(a).all():
            raise ValueError(f"{name} holds NaN or infinite values, which FANN cannot read")

    def fmt(a):
        return "%.9g" if a.dtype == np.float32 else ("%d" if a.dtype.kind in "biu" else "%.17g")

    out = io.StringIO()
    out.write(f"{X.shape[0]} {X.shape[1]} {Y.shape[1]}\n")
    fx, fy = fmt(X), fmt(Y)
    for x, y in zip(X, Y):
        out.write(" ".join(fx % v for v in x) + "\n")
        out.write(" ".join(fy % v for v in y) + "\n")
    with open(path, "w") as f:
        f.write(out.getvalue())


def load_csv(path: str | os.PathLike[str], target: int | str = -1, header: str | bool = "auto",
             delimiter: str = ",", dtype: DTypeLike = "float64"
             ) -> tuple[NDArray[np.floating], NDArray[Any]]:
    """Read a table of comma-separated values: the inputs and one target column.

    The file is read in pieces, its rows a batch at a time into blocks of the arrays
    returned: reading takes about twice the memory of the arrays. Class names are kept
    once each, with a number per row, until the end. Numbers are decimal numbers as C's
    ``strtod`` reads them, with spaces or tabs around them allowed. A target column that
    turns out to hold class names after some numbers is read again from the start.

    Parameters
    ----------
    path : str or path-like
    target : int or str, default -1 (the last column)
        The target column: an index (negative counts from the end) or, with a header
        row, a column name.
    header : "auto", bool
        Whether the first row names the columns. "auto": it does when one of its fields
        is not a number.
    delimiter : str, default ","
    dtype : data type of X (and of y when the targets are numbers), default float64

    Returns
    -------
    X : ndarray (n_samples, n_columns - 1)
        Every column but the target; each must hold numbers.
    y : ndarray (n_samples,)
        The target column: numbers in ``dtype``, or strings (class names) where any
        value is not a number.

    Raises
    ------
    ValueError
        Naming the path and line (the physical line where the row starts, counting the
        lines of quoted fields): rows of different lengths, an input that is not a finite
        number, an unknown target column, an empty file. Naming the path: a file that is
        not text (NUL bytes, invalid UTF-8) or not a regular file (a FIFO, a device).
    """
    return _readers.read_csv(path, target, header, delimiter, np.dtype(dtype))


def load_npz(path: str | os.PathLike[str]) -> tuple[NDArray[Any], NDArray[Any]]:
    """The arrays ``X`` and ``y`` (labels; else ``Y``, a target matrix) of the .npz file
    path, as stored.

    The file is opened once, and only as a regular file: a FIFO or a device is refused
    before it is opened (a FIFO would block the open, a device never end). Pickled
    Python objects are never loaded. Every problem is a ValueError naming the path: not
    a zip archive, missing arrays, objects instead of numbers, a damaged file.
    """
    with _textio.open_regular(path) as f:
        if not zipfile.is_zipfile(f):
            raise ValueError(f"{path} is not an .npz file (a zip archive of NumPy arrays); "
                             f"{_KINDS_TAKEN}")
        f.seek(0)
        try:
            with np.load(f, allow_pickle=False) as data:
                files = sorted(data.files)
                if "X" in files and {"y", "Y"} & set(files):
                    return data["X"], data["y"] if "y" in files else data["Y"]
        except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError,
                NotImplementedError, RuntimeError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if "pickle" in message:
                message = "it holds Python objects, not plain numeric arrays"
            raise ValueError(f"{path} is not a readable .npz of NumPy arrays: "
                             f"{message}") from None
    raise ValueError(f"{path} must hold arrays 'X' and 'y' (labels) or 'Y'; it holds {files}")


_KINDS_TAKEN = ("the data must be 'digits', an .npz with X and y (or Y), a .csv, or a FANN "
                "training file (.train, .test, .data)")
_SUFFIXES = {".npz": "npz", ".train": "fann", ".test": "fann", ".data": "fann",
             ".fann": "fann", ".csv": "csv", ".txt": "csv"}


def sniff(path: str | os.PathLike[str]) -> tuple[str, bool]:
    """The kind of data file path is, and whether its suffix said so: ``(kind, by_suffix)``
    with kind ``"npz"``, ``"fann"`` or ``"csv"``.

    The suffix decides where it is one of .npz; .train, .test, .data, .fann (FANN); .csv,
    .txt. Otherwise the first bytes do: a zip archive is an .npz, a first line of three
    integers a FANN training file, anything else CSV. Only a regular file is opened
    (ValueError naming the path otherwise).
    """
    suffix = os.path.splitext(str(path))[1].lower()
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix], True
    with _textio.open_regular(path) as f:
        head = f.read(4096)
    if head.startswith(b"PK"):
        return "npz", False
    first = head.split(b"\n", 1)[0].split()
    if len(first) == 3 and all(t.isdigit() for t in first):
        return "fann", False
    return "csv", False


def load(spec: str | os.PathLike[str], target: int | str = -1
         ) -> tuple[NDArray[Any], NDArray[Any]]:
    """(X, y) from ``"digits"`` (:func:`load_digits`) or a data file: an .npz
    (:func:`load_npz`), a CSV (:func:`load_csv` with ``target``) or a FANN training file
    (:func:`load_fann`), the kind from the suffix, else from the content (:func:`sniff`).

    This is what ``fastbp train --data`` reads. Only a regular file is read (symbolic
    links followed): a FIFO, ``/dev/zero`` or another device is refused before it is
    opened, since opening a FIFO blocks and a device is read until memory runs out.

    Returns
    -------
    X : ndarray (n_samples, n_features)
    y : ndarray, as the file holds it: (n_samples,) labels, numbers or class names, or
        (n_samples, n_outputs) targets (FANN's files are always 2-D). :func:`prepare`
        turns it into what a network trains on.

    Raises
    ------
    ValueError
        One line naming the file: missing, a folder, not a regular file, or not readable
        as the kind it is taken for.
    """
    if isinstance(spec, str) and spec == "digits":
        return load_digits()
    path = os.fspath(spec)
    if not os.path.exists(path):
        raise ValueError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a folder, not a data file")
    _textio.check_regular(path)
    kind, by_suffix = sniff(path)
    if kind == "npz":
        return load_npz(path)
    try:
        if kind == "fann":
            return load_fann(path)
        return load_csv(path, target=target)
    except ValueError as exc:
        if by_suffix:
            raise
        reason = str(exc).removeprefix(f"{path} ").removeprefix(f"{path}, ")
        raise ValueError(f"{path} is not an .npz, CSV or FANN training file, going by its "
                         f"content (read as {'FANN' if kind == 'fann' else 'CSV'}: {reason}); "
                         f"{_KINDS_TAKEN}") from None


# -- the task: classification or regression -------------------------------------------------

TASKS = ("auto", "classify", "regress")
# task="auto": whole-number targets are class labels unless they take more than
# MAX_AUTO_CLASSES distinct values *and* more than MAX_AUTO_CLASS_SHARE of the rows do (a
# label repeats on 20 rows or more on average); then they are counts or measurements.
MAX_AUTO_CLASSES = 20
MAX_AUTO_CLASS_SHARE = 0.05


def infer_task(y: ArrayLike, task: str = "auto") -> tuple[str, str]:
    """Whether the targets y ask for classification or regression, and why.

    The rule of ``task="auto"``, in order:

    1. class names (strings) and true/false values are classes;
    2. a 2-D y whose every row marks one class with 1 and the others with 0 (or -1) --
       FANN's one-hot encoding -- is classes (the argmax); so is a single column of two
       such values. Any other 2-D y is regression;
    3. numbers with a fraction are regression;
    4. whole numbers are class labels, unless they take more than ``MAX_AUTO_CLASSES``
       (20) distinct values and more than ``MAX_AUTO_CLASS_SHARE`` (5%) of the rows do:
       then regression (scikit-learn's diabetes target: 214 distinct values of 442 rows).

    Parameters
    ----------
    y : array_like, (n,) or (n, k): labels, numbers or class names, as loaded
    task : "auto", "classify" or "regress"
        Anything but "auto" is taken as given.

    Returns
    -------
    (task, reason) : "classify" or "regress", and the reason in words, for a report
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
    if task != "auto":
        return task, f"task={task!r} as given"
    y = np.asarray(y)
    if y.dtype.kind in "US":
        return "classify", f"{np.unique(y).size} class names"
    if y.dtype.kind == "b":
        return "classify", "true/false targets: two classes"
    if y.ndim == 2:
        if _one_hot_like(y) is not None:
            if y.shape[1] == 1:
                return "classify", "one target column of two values (0/1 or -1/1): two classes"
            return "classify", (f"{y.shape[1]} one-hot target columns (1 marks the class, 0 "
                                "or -1 the others): the class is the argmax")
        return "regress", f"{y.shape[1]} target columns, not one class per row"
    if not np.all(y == np.round(y)):
        return "regress", "targets with fractions"
    distinct, n = np.unique(y).size, y.shape[0]
    if distinct > MAX_AUTO_CLASSES and distinct > MAX_AUTO_CLASS_SHARE * n:
        return "regress", (f"{distinct} distinct whole-number targets: too many for classes, "
                           f"more than {MAX_AUTO_CLASSES} and more than "
                           f"{MAX_AUTO_CLASS_SHARE:.0%} of the {n} rows")
    return "classify", f"{distinct} distinct whole-number labels"


def _one_hot_like(Y: NDArray[Any]) -> NDArray[np.int64] | None:
    """Class labels (argmax) when every row of the 2-D Y marks exactly one class with the
    high value and the rest with the low one, ``{0, 1}`` or ``{-1, 1}`` (FANN's encodings);
    for one column, the two values are classes 0 and 1. None otherwise."""
    values = np.unique(Y)
    if values.size > 2 or not (set(values.tolist()) <= {0.0, 1.0}
                               or set(values.tolist()) <= {-1.0, 1.0}):
        return None
    high = Y == 1.0
    if Y.shape[1] == 1:
        return high[:, 0].astype(np.int64) if values.size == 2 else None
    if not np.all(high.sum(axis=1) == 1):
        return None
    return high.argmax(axis=1).astype(np.int64)


class Prepared(NamedTuple):
    """Data checked and ready to train on (what :func:`prepare` returns)."""

    X: NDArray[Any]
    """(n, d) numbers, all finite, as given."""
    y: NDArray[Any]
    """Classification: (n,) int64 labels 0..K-1. Regression: (n, k) float64 targets."""
    task: str
    """"classify" or "regress"."""
    n_outputs: int
    """The outputs a network needs: K classes, or k targets."""
    classes: NDArray[Any] | None = None
    """The class names, where the targets were names (label i is ``classes[i]``)."""
    reason: str = ""
    """Why this task (:func:`infer_task`), for a report."""
    name: str = "the data"
    """What the data is called in messages."""

    @property
    def classification(self) -> bool:
        return self.task == "classify"


def prepare(X: ArrayLike, y: ArrayLike, task: str = "auto", name: str = "the data",
            like: Prepared | None = None) -> Prepared:
    """Check (X, y) and decide the task (:func:`infer_task`): a :class:`Prepared`.

    Parameters
    ----------
    X : array_like (n, d), numbers
    y : array_like (n,) or (n, k): labels, numbers or class names (as :func:`load` gives)
    task : "auto", "classify" or "regress"
    name : str
        What the data is called in messages (a file name).
    like : Prepared, optional
        The prepared training data when X, y are its held-out part: the task is its task,
        class names are numbered as its classes, and the number of features, classes or
        targets must match it.

    Raises
    ------
    ValueError
        One line naming ``name``: X not a 2-D array of finite numbers with at least 2 rows
        and 1 column, y not aligned with X, non-finite targets, a class label that is
        negative or beyond the number of samples (so that nothing is allocated for it),
        one class only, or (with ``like``) data that do not match the training data.
    """
    X, y = np.asarray(X), np.asarray(y)
    if X.dtype.kind not in "biuf":
        raise ValueError(f"X of {name} must hold numbers; got dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"X of {name} must be 2-D (samples, features); got shape {X.shape}")
    if X.shape[0] < 2 or X.shape[1] < 1:
        raise ValueError(f"X of {name} has shape {X.shape}; it needs at least 2 samples "
                         "and 1 feature")
    if not np.isfinite(X).all():
        row = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise ValueError(f"X of {name} holds NaN or infinite values (first in row {row})")
    if like is not None and X.shape[1] != like.X.shape[1]:
        raise ValueError(f"{name} has {X.shape[1]} features; {like.name} has "
                         f"{like.X.shape[1]}")
    if y.ndim not in (1, 2):
        raise ValueError(f"y of {name} must be 1-D labels or a 2-D (samples, outputs) "
                         f"matrix; got shape {y.shape}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"{name} has {X.shape[0]} rows of X but {y.shape[0]} of y; they "
                         "must be aligned, one target per sample")
    names = y.dtype.kind in "US"
    if names:
        if task == "regress" or like is not None and not like.classification:
            raise ValueError(f"regression needs numeric targets; y of {name} holds names "
                             f"such as {y[0]!r}")
    elif y.dtype.kind not in "biuf":
        raise ValueError(f"y of {name} must hold numbers or class names; got dtype {y.dtype}")
    elif not np.isfinite(y).all():
        raise ValueError(f"y of {name} holds NaN or infinite values")
    task, reason = infer_task(y, like.task if like is not None else task)
    if task == "regress":
        Y = np.asarray(y, dtype=np.float64)
        Y = Y[:, None] if Y.ndim == 1 else Y
        if like is not None and Y.shape[1] != like.n_outputs:
            raise ValueError(f"{name} has {Y.shape[1]} targets; {like.name} has "
                             f"{like.n_outputs}")
        return Prepared(X, Y, "regress", Y.shape[1], None, reason, name)
    classes = None
    if names:
        classes, y = _class_numbers(y, name, like)
    elif like is not None and like.classes is not None:
        raise ValueError(f"{name} holds numbers where {like.name} holds class names")
    if y.dtype.kind == "b":
        y = y.astype(np.int64)
    if y.ndim == 2:
        labels = _one_hot_like(y)
        if labels is None:
            raise ValueError(f"task 'classify': the {y.shape[1]} target columns of {name} "
                             "are not one class per row (one-hot with 0/1 or -1/1)")
        y = labels
    if not np.all(y == np.round(y)):
        raise ValueError(f"task 'classify' needs whole-number class labels; y of {name} "
                         "holds fractions")
    if y.min() < 0:
        raise ValueError(f"class labels of {name} must be 0..K-1; found {y.min():g}")
    if like is not None:
        if y.max() >= like.n_outputs:
            raise ValueError(f"class label {y.max():g} of {name} is not a class of "
                             f"{like.name} (0..{like.n_outputs - 1})")
        return Prepared(X, y.astype(np.int64), "classify", like.n_outputs, like.classes,
                        reason, name)
    n_classes = float(y.max()) + 1
    if n_classes > X.shape[0]:
        raise ValueError(f"class label {y.max():g} of {name} is out of range: labels must "
                         f"be 0..K-1 with K at most the number of samples ({X.shape[0]}); "
                         "renumber the classes, or take the task as regression")
    if n_classes < 2:
        raise ValueError(f"y of {name} holds one class only; classification needs two")
    return Prepared(X, y.astype(np.int64), "classify", int(n_classes), classes, reason, name)


def _class_numbers(y: NDArray[Any], name: str, like: Prepared | None
                   ) -> tuple[NDArray[Any], NDArray[Any]]:
    """(class names, y as their numbers): the names sorted, or those of the training data
    ``like`` (a name it does not have is refused)."""
    if like is None:
        return np.unique(y, return_inverse=True)
    if like.classes is None:
        raise ValueError(f"{name} holds class names where {like.name} holds numbers")
    unknown = sorted(set(np.unique(y).tolist()) - set(like.classes.tolist()))
    if unknown:
        raise ValueError(f"{name} has classes {unknown[:5]} that {like.name} does not have")
    return like.classes, np.searchsorted(like.classes, y)


def split_rows(n: int, test_fraction: float, seed: int | None = 0
               ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """A seeded split of rows 0..n-1: ``(train_rows, test_rows)``, the test rows the first
    ``max(1, round(n * test_fraction))`` of a permutation by
    ``numpy.random.default_rng(seed)``.

    Raises ValueError where test_fraction is not in (0, 1) or leaves no training rows.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be a number between 0 and 1 (exclusive); "
                         f"got {test_fraction!r}")
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(n * test_fraction))
    if n_test >= n:
        raise ValueError(f"test_fraction {test_fraction} leaves no training samples of {n}")
    return order[n_test:], order[:n_test]

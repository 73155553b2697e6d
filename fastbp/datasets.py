"""Data sets that ship with fastbp, and readers and writers for data files.

- :func:`load_digits`: the bundled 8x8 handwritten digits.
- :func:`load_fann` / :func:`save_fann`: FANN's training-file format, the format of
  FANN's tutorials and benchmark sets (``.train``, ``.test``, ``.data``).
- :func:`load_csv`: comma-separated values, header row optional.

A malformed file raises ``ValueError`` naming the path and the line.
"""
import csv
import io
import math
import os
from importlib import resources

import numpy as np

__all__ = ["load_csv", "load_digits", "load_fann", "save_fann"]


def load_digits(dtype="float32"):
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


def _text_lines(path):
    """The lines of a text file, or ValueError naming the path when it is not text."""
    with open(path, "rb") as f:
        raw = f.read()
    if b"\0" in raw:
        raise ValueError(f"{path} is not a text file (it holds NUL bytes)")
    try:
        return raw.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not a UTF-8 text file (byte {exc.start} "
                         f"is {raw[exc.start:exc.start + 1]!r})") from None


def _number(path, lineno, token):
    try:
        value = float(token)
    except ValueError:
        raise ValueError(f"{path}, line {lineno}: {token[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{path}, line {lineno}: {token!r} is not a finite number")
    return value


def load_fann(path, dtype="float64"):
    """Read a training file in FANN's format.

    The format (``fann_save_train`` writes it, ``fann_read_train_from_file`` reads it): a
    header line ``n_samples n_inputs n_outputs``, then for each sample a line of
    ``n_inputs`` values and a line of ``n_outputs`` values, separated by whitespace. As in
    FANN, line breaks between values are not significant; only the count of values is.

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
        few or too many values for the header's counts.
    """
    lines = _text_lines(path)
    header_at = next((i for i, line in enumerate(lines) if line.strip()), None)
    if header_at is None:
        raise ValueError(f"{path} is empty; a FANN training file starts with the line "
                         "'n_samples n_inputs n_outputs'")
    header = lines[header_at].split()
    try:
        counts = [int(t) for t in header]
    except ValueError:
        counts = []
    if len(counts) != 3 or min(counts) < 1:
        raise ValueError(f"{path}, line {header_at + 1}: a FANN training file starts with "
                         f"three positive integers 'n_samples n_inputs n_outputs'; got "
                         f"{lines[header_at][:60]!r}")
    n, n_in, n_out = counts
    width = n_in + n_out
    # Refuse a header that declares more values than the file can hold before allocating
    # (every value takes at least two characters with its separator).
    size = sum(len(line) + 1 for line in lines[header_at + 1:])
    if n * width > size // 2 + 1:
        raise ValueError(f"{path}, line {header_at + 1}: the header declares {n} samples of "
                         f"{n_in} inputs and {n_out} outputs, more values than the file "
                         "holds")
    values = np.empty(n * width, dtype=np.float64)
    k = 0
    for lineno, line in enumerate(lines[header_at + 1:], start=header_at + 2):
        tokens = line.split()
        if not tokens:
            continue
        if k + len(tokens) > values.size:
            raise ValueError(f"{path}, line {lineno}: more values than the header's {n} "
                             f"samples of {n_in} inputs and {n_out} outputs")
        for token in tokens:
            values[k] = _number(path, lineno, token)
            k += 1
    if k < values.size:
        raise ValueError(f"{path}, line {len(lines)}: the file ends after {k // width} "
                         f"complete samples ({k} values); the header declares {n} samples "
                         f"of {n_in} inputs and {n_out} outputs")
    values = values.reshape(n, width).astype(dtype, copy=False)
    return np.ascontiguousarray(values[:, :n_in]), np.ascontiguousarray(values[:, n_in:])


def save_fann(path, X, Y):
    """Write (X, Y) as a FANN training file (readable by FANN and :func:`load_fann`).

    Parameters
    ----------
    path : str or path-like
    X : array_like (n_samples, n_inputs)
    Y : array_like (n_samples, n_outputs), or (n_samples,): one output per sample

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


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_csv(path, target=-1, header="auto", delimiter=",", dtype="float64"):
    """Read a table of comma-separated values: the inputs and one target column.

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
        Naming the path and line: rows of different lengths, an input that is not a
        finite number, an unknown target column, an empty file.
    """
    lines = _text_lines(path)
    rows = []  # (line number, fields)
    try:
        for row in csv.reader(lines, delimiter=delimiter, strict=True):
            rows.append(row)
    except csv.Error as exc:
        raise ValueError(f"{path}, line {len(rows) + 1}: {exc}") from None
    rows = [(i, [f.strip() for f in row]) for i, row in enumerate(rows, start=1)
            if any(f.strip() for f in row)]
    if not rows:
        raise ValueError(f"{path} holds no rows")
    if header == "auto":
        header = not all(_is_number(f) for f in rows[0][1])
    names = None
    if header:
        names = rows[0][1]
        rows = rows[1:]
        if not rows:
            raise ValueError(f"{path} holds a header row and no data")
    width = len(names) if names is not None else len(rows[0][1])
    if width < 2:
        raise ValueError(f"{path}, line {rows[0][0]}: one column; a CSV needs input "
                         f"columns and a target column (delimiter {delimiter!r})")
    for lineno, fields in rows:
        if len(fields) != width:
            raise ValueError(f"{path}, line {lineno}: {len(fields)} fields where the "
                             f"{'header' if names is not None else 'first row'} has {width}")
    if isinstance(target, str):
        if names is None:
            raise ValueError(f"target={target!r} names a column, but {path} has no header row")
        if target not in names:
            raise ValueError(f"{path} has no column {target!r}; its columns are {names}")
        column = names.index(target)
    else:
        if isinstance(target, bool) or not isinstance(target, (int, np.integer)) \
                or not -width <= target < width:
            raise ValueError(f"{path} has {width} columns; target must be a column name "
                             f"or an index in [-{width}, {width}); got {target!r}")
        column = int(target) % width
    X = np.empty((len(rows), width - 1), dtype=np.float64)
    inputs = [j for j in range(width) if j != column]
    for r, (lineno, fields) in enumerate(rows):
        for c, j in enumerate(inputs):
            X[r, c] = _number(path, lineno, fields[j])
    labels = [fields[column] for _, fields in rows]
    if all(_is_number(v) for v in labels):
        y = np.array([_number(path, lineno, fields[column]) for lineno, fields in rows],
                     dtype=np.float64).astype(dtype, copy=False)
    else:
        y = np.array(labels, dtype=str)
    return X.astype(dtype, copy=False), y


def _sniff(path):
    """(kind, from_suffix): 'npz', 'fann' or 'csv' from the path's suffix, else from its
    first bytes (a zip archive is an .npz; a first line of three integers, FANN)."""
    suffix = os.path.splitext(str(path))[1].lower()
    kinds = {".npz": "npz", ".train": "fann", ".test": "fann", ".data": "fann",
             ".fann": "fann", ".csv": "csv", ".txt": "csv"}
    if suffix in kinds:
        return kinds[suffix], True
    with open(path, "rb") as f:
        head = f.read(4096)
    if head.startswith(b"PK"):
        return "npz", False
    first = head.split(b"\n", 1)[0].split()
    if len(first) == 3 and all(t.isdigit() for t in first):
        return "fann", False
    return "csv", False

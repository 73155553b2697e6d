"""Data sets that ship with fastbp, and readers and writers for data files.

- :func:`load_digits`: the bundled 8x8 handwritten digits.
- :func:`load_fann` / :func:`save_fann`: FANN's training-file format, the format of
  FANN's tutorials and benchmark sets (``.train``, ``.test``, ``.data``).
- :func:`load_csv`: comma-separated values, header row optional.

A malformed file raises ``ValueError`` naming the path and the line.

The readers stream: a file is read in pieces of about 128 KiB that end at line breaks,
and its numbers go into NumPy arrays piece by piece, so that reading takes little more
memory than the arrays returned (a Python list of every field takes 30 to 80 times the
file). They read numbers as C's ``strtod`` reads decimal ones, as FANN does: ASCII digits
with an optional sign, fraction and exponent -- not the wider syntax of Python's
``float()`` (``1_000``, non-ASCII digits and spaces), so that a file means the same to
fastbp as to FANN or any C program. They open regular files only: a FIFO would block the
reader, and a device such as ``/dev/zero`` never ends.
"""
import codecs
import collections
import csv
import io
import math
import os
import re
import stat
import warnings
from importlib import resources
from itertools import chain

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


# -- opening: regular files only -----------------------------------------------------------

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISDIR, "a folder"))


def _refuse_unless_regular(path, mode):
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "of an unknown kind")
        raise ValueError(f"{path} is not a regular file ({kind})")


def _check_regular(path):
    """ValueError "<path> is not a regular file (a FIFO)" unless path, its symbolic links
    followed, is a regular file; OSError (no such file) passes through.

    Readers check before they open: opening a FIFO for reading blocks until a writer
    comes, and a device such as /dev/zero is read until memory runs out.
    """
    _refuse_unless_regular(path, os.stat(path).st_mode)


def _open_regular(path):
    """path opened for reading in binary, once :func:`_check_regular` passes.

    The open does not block and the open file is checked again, so that a path swapped
    for a FIFO between the check and the open is refused too, not waited on.
    """
    _check_regular(path)
    nonblocking = getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, os.O_RDONLY | nonblocking | getattr(os, "O_BINARY", 0))
    try:
        _refuse_unless_regular(path, os.fstat(fd).st_mode)
        if nonblocking:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


# -- numbers as strtod reads them ----------------------------------------------------------

# A decimal number as C's strtod reads it (and FANN with it), in ASCII, with ASCII space
# around it; and the non-finite spellings that float() also reads, refused as such.
_NUMBER = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*", re.ASCII)
_NON_FINITE = re.compile(r"\s*[+-]?(?:inf(?:inity)?|nan)\s*", re.ASCII | re.IGNORECASE)
# In ASCII text, all that float() reads beyond those two: digits grouped with "_", and
# the separators \x1c-\x1f, which str.isspace counts as spaces. Fields free of these and
# of non-ASCII characters can go to float() unchecked, many at a time (_numbers).
_FLOAT_ONLY = ("_", "\x1c", "\x1d", "\x1e", "\x1f")


def _plain(text):
    """Whether float() reads text (any number of fields run together) only as strtod
    would: then float() either refuses a field or reads it as _number does."""
    return text.isascii() and not any(c in text for c in _FLOAT_ONLY)


def _number(path, lineno, token):
    """The str token as a float, or ValueError naming the path and line: not a number as
    strtod reads one, or not finite (inf, nan, or beyond the range of a float64)."""
    if _NUMBER.fullmatch(token):
        value = float(token)
        if math.isfinite(value):
            return value
    elif not _NON_FINITE.fullmatch(token):
        raise ValueError(f"{path}, line {lineno}: {token[:40]!r} is not a number")
    raise ValueError(f"{path}, line {lineno}: {token!r} is not a finite number")


def _is_number(text):
    """Whether text reads as a number, finite or not: a CSV header row holds a field that
    does not, and so does a target column of class names."""
    return bool(_NUMBER.fullmatch(text) or _NON_FINITE.fullmatch(text))


def _numbers(fields, count):
    """The list of str fields (count of them) as a float64 array, checked and converted
    many at a time; None where any field is not a plain finite number (the caller then
    finds which one, a field at a time, for the message)."""
    if not _plain("".join(fields)):
        return None
    try:
        values = np.fromiter(map(float, fields), np.float64, count)
    except ValueError:
        return None
    return values if np.isfinite(values).all() else None


# The fast path: bytes that may stand in a number in strtod's syntax, and spaces (\n aside).
_NUMBER_BYTES = np.zeros(256, bool)
_NUMBER_BYTES[list(b"0123456789+-.eE")] = True
_SPACE_BYTES = np.zeros(256, bool)
_SPACE_BYTES[list(b" \t\r\v\f")] = True


def _starts(number):
    """The number of runs of True in the bool array number (tokens, where it marks their
    bytes)."""
    return int(np.count_nonzero(number[1:] > number[:-1])) + bool(number[:1].any())


def _parse_all(text, count):
    """The count numbers of text (bytes of number bytes and spaces only, count tokens),
    parsed in C by NumPy's strtod (exactly as float() would); None where NumPy does not
    read all of text as count numbers (a token such as '1e', '.' or '1-2' is not one
    number) or where a number is not finite. No Python object per number is made."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy < 2.3 warns where it stops short of the end
        try:
            values = np.fromstring(text, np.float64, sep=" ")
        except (ValueError, DeprecationWarning):
            return None
    return values if values.size == count and np.isfinite(values).all() else None


# -- text in pieces ------------------------------------------------------------------------

_PIECE = 1 << 17
_NON_SPACE = re.compile(rb"[^ \t\n\r\v\f]")
_BREAK = re.compile(rb"[\r\n]")


def _breaks(data):
    """The number of line breaks in the bytes data: \\n, \\r\\n or a lone \\r."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def _pieces(f, path, split_long_lines=False):
    """Binary file f in pieces (bytes) of about _PIECE bytes that end after a line break:
    tuples (piece, the number of its first line, the byte offset of its start).

    Each piece is checked as text before it is handed on: NUL bytes (binary data) and
    invalid UTF-8 raise ValueError naming the path (and the byte and line). A UTF-8 byte
    order mark at the start is skipped. Lines end at \\n, \\r\\n or \\r. A piece ends
    inside a line only where the line runs on for more than _PIECE bytes and
    ``split_long_lines`` allows it (FANN, whose values may all stand on one line): then
    after a space or tab, so that no number is cut.
    """
    lineno, offset, rest, first = 1, 0, b"", True
    while True:
        data = f.read(_PIECE)
        end = not data
        if first:
            first = False
            if data.startswith(codecs.BOM_UTF8):
                data, offset = data[len(codecs.BOM_UTF8):], len(codecs.BOM_UTF8)
        if b"\0" in data:
            raise ValueError(f"{path} is not a text file (it holds NUL bytes)")
        data = rest + data if rest else data
        if end:
            cut = len(data)
        else:  # after the last line break, but not after a last \r: \r\n may follow
            cut = max(data.rfind(b"\n"), data.rfind(b"\r", 0, len(data) - 1)) + 1
            if not cut and split_long_lines and len(data) >= _PIECE:
                cut = max(data.rfind(c) for c in (b" ", b"\t", b"\v", b"\f")) + 1
        piece, rest = data[:cut], data[cut:]
        if piece:
            if not piece.isascii():
                try:
                    piece.decode("utf-8")
                except UnicodeDecodeError as exc:
                    at = exc.start
                    raise ValueError(
                        f"{path} is not a UTF-8 text file (byte {offset + at} is "
                        f"{piece[at:at + 1]!r}, on line {lineno + _breaks(piece[:at])})"
                    ) from None
            yield piece, lineno, offset
            lineno += _breaks(piece)
            offset += len(piece)
        if end:
            return


def load_fann(path, dtype="float64"):
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
    dtype = np.dtype(dtype)
    with _open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        pieces = _pieces(f, path, split_long_lines=True)
        for piece, lineno, offset in pieces:
            found = _NON_SPACE.search(piece)
            if found is not None:
                break
        else:
            raise ValueError(f"{path} is empty; a FANN training file starts with the line "
                             "'n_samples n_inputs n_outputs'")
        start = found.start()
        header_at = lineno + _breaks(piece[:start])
        line_end = _BREAK.search(piece, start)
        end = line_end.start() if line_end is not None else len(piece)
        line = piece[max(piece.rfind(b"\n", 0, start), piece.rfind(b"\r", 0, start)) + 1:end]
        tokens = line.split()
        counts = [int(t) for t in tokens] if all(_COUNT.fullmatch(t) for t in tokens) else []
        # A header line that runs on into the next piece holds more than three numbers.
        if (len(counts) != 3 or min(counts) < 1
                or line_end is None and next(pieces, None) is not None):
            raise ValueError(f"{path}, line {header_at}: a FANN training file starts with "
                             f"three positive integers 'n_samples n_inputs n_outputs'; got "
                             f"{line.decode('utf-8', 'replace')[:60]!r}")
        n, n_in, n_out = counts
        # Refuse a header that declares more values than the file can hold before allocating
        # (every value takes at least two bytes with its separator).
        if n * (n_in + n_out) > (size - offset - end) // 2 + 1:
            raise ValueError(f"{path}, line {header_at}: the header declares {n} samples of "
                             f"{n_in} inputs and {n_out} outputs, more values than the file "
                             "holds")
        samples = _Samples(path, n, n_in, n_out, dtype)
        samples.read(piece[end:], header_at)
        last = piece, lineno
        for piece, lineno, _ in pieces:
            samples.read(piece, lineno)
            last = piece, lineno
    if samples.count < samples.total:
        piece, lineno = last
        lineno += _breaks(piece) - piece.endswith((b"\n", b"\r"))
        raise ValueError(f"{path}, line {lineno}: the file ends after "
                         f"{samples.count // samples.width} complete samples ({samples.count} "
                         f"values); the header declares {n} samples of {n_in} inputs and "
                         f"{n_out} outputs")
    return samples.X, samples.Y


_COUNT = re.compile(rb"\+?[0-9]+")  # a count in FANN's header, as fscanf's %u reads it


class _Samples:
    """FANN's values in file order, written sample by sample into X and Y (allocated once,
    in the dtype returned); the values of a sample cut by a piece's end wait in pending."""

    def __init__(self, path, n, n_in, n_out, dtype):
        self.path, self.n_in, self.width = path, n_in, n_in + n_out
        self.header = f"the header's {n} samples of {n_in} inputs and {n_out} outputs"
        self.X = np.empty((n, n_in), dtype)
        self.Y = np.empty((n, n_out), dtype)
        self.total = n * self.width
        self.count = 0  # values read
        self.rows = 0   # samples written
        self.pending = np.empty(0)

    def read(self, piece, lineno):
        """Take the values of piece (bytes; its first line is lineno): parsed in C where
        all is well, else line by line, to raise ValueError naming the first line at
        fault."""
        a = np.frombuffer(piece, np.uint8)
        number = _NUMBER_BYTES[a]
        if (number | _SPACE_BYTES[a] | (a == 10)).all():
            count = _starts(number)
            if not count:
                return
            if self.count + count <= self.total:
                values = _parse_all(piece, count)
                if values is not None:
                    self._add(values)
                    return
        for i, line in enumerate(piece.splitlines()):
            tokens = line.split()
            if self.count + len(tokens) > self.total:
                raise ValueError(f"{self.path}, line {lineno + i}: more values than "
                                 f"{self.header}")
            if tokens:
                self._add(np.array([_number(self.path, lineno + i, t.decode())
                                    for t in tokens]))

    def _add(self, values):
        self.count += values.size
        if self.pending.size:
            values = np.concatenate([self.pending, values])
        full = values.size // self.width
        if full:
            block = values[:full * self.width].reshape(full, self.width)
            self.X[self.rows:self.rows + full] = block[:, :self.n_in]
            self.Y[self.rows:self.rows + full] = block[:, self.n_in:]
            self.rows += full
        self.pending = values[full * self.width:].copy()


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


# Line breaks that str.splitlines knows besides \n, \r\n and \r (csv.reader's own).
_OTHER_BREAKS = ("\v", "\f", "\x1c", "\x1d", "\x1e")
_BATCH = 1 << 14  # fields that csv.reader's rows bring at a time into the arrays


def _lines(text):
    """The lines of text, each with its line break (csv.reader needs them to keep a quoted
    field's line breaks), broken at \\n, \\r\\n and \\r only: the lines csv.reader counts
    in line_num, and an editor too (str.splitlines breaks at more)."""
    if text.isascii() and not any(c in text for c in _OTHER_BREAKS):
        return text.splitlines(True)
    return io.StringIO(text, newline="")


class _ClassNames(Exception):
    """The target column holds a value that is not a number: read it again as names."""


def load_csv(path, target=-1, header="auto", delimiter=",", dtype="float64"):
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
    dtype = np.dtype(dtype)
    try:
        return _read_csv(path, target, header, delimiter, dtype, names=False)
    except _ClassNames:
        return _read_csv(path, target, header, delimiter, dtype, names=True)


def _read_csv(path, target, header, delimiter, dtype, names):
    """load_csv, reading the target column as numbers or (names) as class names; raises
    _ClassNames where a target is not a number and names is False.

    Each piece of the file is parsed in NumPy where it is plain (see _fast_rows), else
    with csv.reader a row at a time -- the first piece (header and width), pieces with
    quotes, blank lines or errors -- which also finds and names what is wrong."""
    # Delimiters the fast path can tell from numbers, spaces and quotes.
    fast = len(delimiter) == 1 and delimiter.isascii() and delimiter not in (
        '"0123456789+-.eE \t\r\n\v\f')
    with _open_regular(path) as f:
        pieces = _pieces(f, path)
        lines = collections.deque()

        def feed():
            """The lines of the piece being read, for csv.reader; where a row runs on
            past its end (a quoted line break), then those of the next pieces."""
            while True:
                while lines:
                    yield lines.popleft()
                following = next(pieces, None)
                if following is None:
                    return
                lines.extend(_lines(following[0].decode("utf-8")))

        reader = csv.reader(feed(), delimiter=delimiter, strict=True)
        skipped = 0  # lines of the pieces parsed in NumPy, which reader.line_num misses
        decided, columns, table, width, batch, rows, starts = False, None, None, 0, 0, [], []
        for piece, _, _ in pieces:
            if table is not None and fast:
                parsed = _fast_rows(piece, width, table.column, names, delimiter)
                if parsed is not None:
                    if rows:
                        table.add(rows, starts)
                        rows, starts = [], []
                    table.add_parsed(*parsed)
                    skipped += _breaks(piece) + (not piece.endswith((b"\n", b"\r")))
                    continue
            lines.extend(_lines(piece.decode("utf-8")))
            while lines:
                start = skipped + reader.line_num + 1  # the physical line the row starts on
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    if rows:  # errors in rows above come first
                        table.add(rows, starts)
                    raise ValueError(f"{path}, line {skipped + reader.line_num}: {exc}") \
                        from None
                if not "".join(row).strip():
                    continue  # a blank line
                if table is None:
                    if not decided:
                        decided = True
                        if header == "auto":
                            header = not all(_is_number(f) for f in row)
                        if header:
                            columns = [f.strip() for f in row]
                            continue
                    width = len(columns) if columns is not None else len(row)
                    if width < 2:
                        raise ValueError(f"{path}, line {start}: one column; a CSV needs "
                                         "input columns and a target column (delimiter "
                                         f"{delimiter!r})")
                    table = _Table(path, width, _target_column(path, target, columns, width),
                                   dtype, names)
                    batch = max(1, _BATCH // width)
                if len(row) != width:
                    if rows:  # errors in rows above come first
                        table.add(rows, starts)
                    raise ValueError(f"{path}, line {start}: {len(row)} fields where the "
                                     f"{'header' if columns is not None else 'first row'} "
                                     f"has {width}")
                rows.append(row)
                starts.append(start)
                if len(rows) == batch:
                    table.add(rows, starts)
                    rows, starts = [], []
        if not decided:
            raise ValueError(f"{path} holds no rows")
        if table is None:
            raise ValueError(f"{path} holds a header row and no data")
        if rows:
            table.add(rows, starts)
    return table.arrays()


def _fast_rows(piece, width, column, names, delimiter):
    """The rows of piece (bytes) parsed in NumPy, with no Python object per field, where
    the piece is plain: ASCII without quotes or lone \\r, every line of exactly width
    fields, every input field -- and the target unless names -- one finite number in
    strtod's syntax, spaces around it allowed.

    Returns (inputs float64 (n, width - 1), targets): targets float64 (n,), or with
    names (the distinct names in the piece, stripped; for each row the index of its
    name). None where the piece is not plain: the caller reads it with csv.reader, which
    reads what is right (quotes, blank lines) and names what is wrong.
    """
    if not piece.isascii() or b'"' in piece or piece.count(b"\r") != piece.count(b"\r\n"):
        return None
    a = np.frombuffer(piece, np.uint8)
    newline = a == 10
    sep = newline | (a == ord(delimiter))
    seps = np.flatnonzero(sep)  # where each field ends
    if not piece.endswith(b"\n"):
        seps = np.append(seps, a.size)  # the last line ends with the file
    if seps.size % width:
        return None
    n = seps.size // width
    ends_line = np.append(newline, True)[seps].reshape(n, width)
    if not ends_line[:, -1].all() or ends_line[:, :-1].any():
        return None  # a line of more or fewer fields, or a blank line
    number = _NUMBER_BYTES[a]
    plain = sep | number | _SPACE_BYTES[a]
    if names:  # the target fields hold anything but separators and quotes
        ends = seps[column::width]
        if column:
            begins = seps[column - 1::width] + 1
        else:  # after the end of the line before
            begins = np.r_[0, seps[width - 1:-1:width] + 1]
        inside = np.zeros(a.size + 1, np.int8)
        inside[begins] += 1
        inside[ends] -= 1
        target = np.cumsum(inside[:-1], dtype=np.int8).astype(bool)
        number &= ~target
        plain |= target
    if not plain.all():
        return None
    # One number per field: count the runs of number bytes in each field.
    first = number.copy()
    first[1:] &= ~number[:-1]
    per_field = np.bincount(np.searchsorted(seps, np.flatnonzero(first)),
                            minlength=seps.size).reshape(n, width)
    if names:
        per_field[:, column] = 1
    if not (per_field == 1).all():
        return None
    text = a.copy()
    text[sep] = 32
    if names:
        text[target] = 32
    values = _parse_all(text.tobytes(), n * (width - 1 if names else width))
    if values is None:
        return None
    if not names:
        values = values.reshape(n, width)
        return np.delete(values, column, axis=1), values[:, column].copy()
    longest = max(int((ends - begins).max()), 1)
    if longest > 256:
        return None
    at = begins[:, None] + np.arange(longest)
    labels = np.where(at < ends[:, None], a[np.minimum(at, a.size - 1)], 0).astype(np.uint8)
    distinct, inverse = np.unique(labels.view(f"S{longest}").ravel(), return_inverse=True)
    return (values.reshape(n, width - 1),
            ([label.decode("ascii").strip() for label in distinct.tolist()], inverse.ravel()))


def _target_column(path, target, columns, width):
    """The index of the target column: by name (columns, None without a header) or index."""
    if isinstance(target, str):
        if columns is None:
            raise ValueError(f"target={target!r} names a column, but {path} has no header row")
        if target not in columns:
            raise ValueError(f"{path} has no column {target!r}; its columns are {columns}")
        return columns.index(target)
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) \
            or not -width <= target < width:
        raise ValueError(f"{path} has {width} columns; target must be a column name "
                         f"or an index in [-{width}, {width}); got {target!r}")
    return int(target) % width


class _Table:
    """A CSV's data rows, taken a batch at a time: the inputs into blocks of X in dtype,
    the target column into blocks of numbers or, with names, of class numbers (each name
    kept once, in index), stacked at the end."""

    def __init__(self, path, width, column, dtype, names):
        self.path, self.column, self.dtype, self.names = path, column, dtype, names
        self.n_inputs = width - 1
        self.x_blocks, self.y_blocks = [], []
        self.index = {}  # class name -> its number, in order of first appearance
        self.non_finite = None  # the first non-finite target, refused at the end

    def add(self, rows, starts):
        """Take rows (lists of width str fields; emptied of their target) that start on
        the lines starts."""
        targets = [row.pop(self.column) for row in rows]
        block = np.empty((len(rows), self.n_inputs), self.dtype)
        values = _numbers(list(chain.from_iterable(rows)), block.size)
        if values is not None:
            block.reshape(-1)[:] = values
        else:  # which field is bad: the first, row by row
            for r, (row, start) in enumerate(zip(rows, starts)):
                for c, field in enumerate(row):
                    block[r, c] = _number(self.path, start, field)
        self.x_blocks.append(block)
        if self.names:
            index = self.index
            self.y_blocks.append(np.fromiter(
                (index.setdefault(t.strip(), len(index)) for t in targets), np.intp,
                len(targets)))
            return
        values = _numbers(targets, len(targets))
        if values is None:
            values = np.empty(len(targets))
            for i, (t, start) in enumerate(zip(targets, starts)):
                try:
                    values[i] = _number(self.path, start, t)
                except ValueError as exc:
                    if not _is_number(t):
                        raise _ClassNames from None
                    # Refused only at the end: a class name further down makes it one.
                    self.non_finite = self.non_finite or exc
                    values[i] = np.nan
        self.y_blocks.append(values.astype(self.dtype, copy=False))

    def add_parsed(self, inputs, targets):
        """Take rows parsed by _fast_rows: inputs (n, width - 1), targets as it returns
        them."""
        self.x_blocks.append(inputs.astype(self.dtype, copy=False))
        if self.names:
            distinct, rows = targets
            index = self.index
            numbers = np.array([index.setdefault(name, len(index)) for name in distinct],
                               np.intp)
            self.y_blocks.append(numbers[rows])
        else:
            self.y_blocks.append(targets.astype(self.dtype, copy=False))

    def arrays(self):
        """(X, y), the blocks stacked (and freed)."""
        if self.non_finite is not None:
            raise self.non_finite
        X = _stack(self.x_blocks)
        y = _stack(self.y_blocks)
        if self.names:
            y = np.array(list(self.index), dtype=str)[y]
        return X, y


def _stack(blocks):
    """The arrays of the list blocks end to end; the list is emptied to free them."""
    stacked = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
    blocks.clear()
    return stacked


def _sniff(path):
    """(kind, from_suffix): 'npz', 'fann' or 'csv' from the path's suffix, else from its
    first bytes (a zip archive is an .npz; a first line of three integers, FANN). Reads
    only a regular file (ValueError otherwise)."""
    suffix = os.path.splitext(str(path))[1].lower()
    kinds = {".npz": "npz", ".train": "fann", ".test": "fann", ".data": "fann",
             ".fann": "fann", ".csv": "csv", ".txt": "csv"}
    if suffix in kinds:
        return kinds[suffix], True
    with _open_regular(path) as f:
        head = f.read(4096)
    if head.startswith(b"PK"):
        return "npz", False
    first = head.split(b"\n", 1)[0].split()
    if len(first) == 3 and all(t.isdigit() for t in first):
        return "fann", False
    return "csv", False

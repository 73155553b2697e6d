"""The streaming parsers behind :func:`fastbp.datasets.load_fann` and
:func:`fastbp.datasets.load_csv` (their documentation is there).

Both read a file in pieces (:func:`fastbp._textio.pieces`) and put its numbers into NumPy
arrays piece by piece, so that reading takes little more memory than the arrays returned
(a Python list of every field takes 30 to 80 times the file). Where a piece is plain --
ASCII numbers, spaces and separators only -- it is parsed in C by NumPy, with no Python
object per field; anything else goes through a slower path that reads what is right
(quoted CSV fields, blank lines) and names the first line at fault.
"""
import collections
import csv
import io
import os
import re
from itertools import chain

import numpy as np

from fastbp import _textio

# -- FANN training files ---------------------------------------------------------------------

_NON_SPACE = re.compile(rb"[^ \t\n\r\v\f]")
_BREAK = re.compile(rb"[\r\n]")


def read_fann(path, dtype):
    """(X, Y) of the FANN training file path, in dtype (a numpy.dtype); ValueError naming
    the path and line for anything malformed (see datasets.load_fann)."""
    with _textio.open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        pieces = _textio.pieces(f, path, split_long_lines=True)
        for piece, lineno, offset in pieces:
            found = _NON_SPACE.search(piece)
            if found is not None:
                break
        else:
            raise ValueError(f"{path} is empty; a FANN training file starts with the line "
                             "'n_samples n_inputs n_outputs'")
        start = found.start()
        header_at = lineno + _textio.count_breaks(piece[:start])
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
        lineno += _textio.count_breaks(piece) - piece.endswith((b"\n", b"\r"))
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
        number = _textio.NUMBER_BYTES[a]
        if (number | _textio.SPACE_BYTES[a] | (a == 10)).all():
            count = _textio.count_runs(number)
            if not count:
                return
            if self.count + count <= self.total:
                values = _textio.parse_all(piece, count)
                if values is not None:
                    self._add(values)
                    return
        for i, line in enumerate(piece.splitlines()):
            tokens = line.split()
            if self.count + len(tokens) > self.total:
                raise ValueError(f"{self.path}, line {lineno + i}: more values than "
                                 f"{self.header}")
            if tokens:
                self._add(np.array([_textio.to_number(self.path, lineno + i, t.decode())
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


# -- CSV -------------------------------------------------------------------------------------

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


def read_csv(path, target, header, delimiter, dtype):
    """(X, y) of the CSV file path (see datasets.load_csv): the target column read as
    numbers, or read again from the start as class names where a value is not a number."""
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
    with _textio.open_regular(path) as f:
        pieces = _textio.pieces(f, path)
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
                    ends_open = not piece.endswith((b"\n", b"\r"))
                    skipped += _textio.count_breaks(piece) + ends_open
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
                            header = not all(_textio.is_number(f) for f in row)
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
    number = _textio.NUMBER_BYTES[a]
    plain = sep | number | _textio.SPACE_BYTES[a]
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
    values = _textio.parse_all(text.tobytes(), n * (width - 1 if names else width))
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
        values = _textio.to_numbers(list(chain.from_iterable(rows)), block.size)
        if values is not None:
            block.reshape(-1)[:] = values
        else:  # which field is bad: the first, row by row
            for r, (row, start) in enumerate(zip(rows, starts)):
                for c, field in enumerate(row):
                    block[r, c] = _textio.to_number(self.path, start, field)
        self.x_blocks.append(block)
        if self.names:
            index = self.index
            self.y_blocks.append(np.fromiter(
                (index.setdefault(t.strip(), len(index)) for t in targets), np.intp,
                len(targets)))
            return
        values = _textio.to_numbers(targets, len(targets))
        if values is None:
            values = np.empty(len(targets))
            for i, (t, start) in enumerate(zip(targets, starts)):
                try:
                    values[i] = _textio.to_number(self.path, start, t)
                except ValueError as exc:
                    if not _textio.is_number(t):
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

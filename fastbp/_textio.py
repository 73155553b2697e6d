"""Text files as fastbp's data readers take them: regular files only, in pieces that end
at line breaks, checked as UTF-8 text, and numbers as C's ``strtod`` reads them.

- :func:`check_regular`, :func:`open_regular`: a FIFO would block a reader and a device
  such as ``/dev/zero`` never ends, so only a regular file is opened.
- :func:`pieces`: a binary file in pieces of about 128 KiB that end after a line break,
  with their first line's number: a reader turns each into arrays before the next is read.
- :func:`to_number`, :func:`to_numbers`, :func:`parse_all`, :func:`is_number`: decimal
  numbers as ``strtod`` reads them (ASCII digits, an optional sign, fraction and
  exponent), not the wider syntax of Python's ``float()`` (``1_000``, non-ASCII digits),
  so that a file means the same to fastbp as to FANN or any C program; non-finite values
  are refused as such.

The parsers of FANN and CSV files (:mod:`fastbp._readers`) are built on these;
:mod:`fastbp.datasets` is their public face.
"""
import codecs
import math
import os
import re
import stat
import warnings

import numpy as np

# -- opening: regular files only -----------------------------------------------------------

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISDIR, "a folder"))


def _refuse_unless_regular(path, mode):
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "of an unknown kind")
        raise ValueError(f"{path} is not a regular file ({kind})")


def check_regular(path):
    """ValueError "<path> is not a regular file (a FIFO)" unless path, its symbolic links
    followed, is a regular file; OSError (no such file) passes through.

    Readers check before they open: opening a FIFO for reading blocks until a writer
    comes, and a device such as /dev/zero is read until memory runs out.
    """
    _refuse_unless_regular(path, os.stat(path).st_mode)


def open_regular(path):
    """path opened for reading in binary, once :func:`check_regular` passes.

    The open does not block and the open file is checked again, so that a path swapped
    for a FIFO between the check and the open is refused too, not waited on.
    """
    check_regular(path)
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
# of non-ASCII characters can go to float() unchecked, many at a time (to_numbers).
_FLOAT_ONLY = ("_", "\x1c", "\x1d", "\x1e", "\x1f")


def _plain(text):
    """Whether float() reads text (any number of fields run together) only as strtod
    would: then float() either refuses a field or reads it as to_number does."""
    return text.isascii() and not any(c in text for c in _FLOAT_ONLY)


def to_number(path, lineno, token):
    """The str token as a float, or ValueError naming the path and line: not a number as
    strtod reads one, or not finite (inf, nan, or beyond the range of a float64)."""
    if _NUMBER.fullmatch(token):
        value = float(token)
        if math.isfinite(value):
            return value
    elif not _NON_FINITE.fullmatch(token):
        raise ValueError(f"{path}, line {lineno}: {token[:40]!r} is not a number")
    raise ValueError(f"{path}, line {lineno}: {token!r} is not a finite number")


def is_number(text):
    """Whether text reads as a number, finite or not: a CSV header row holds a field that
    does not, and so does a target column of class names."""
    return bool(_NUMBER.fullmatch(text) or _NON_FINITE.fullmatch(text))


def to_numbers(fields, count):
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
NUMBER_BYTES = np.zeros(256, bool)
NUMBER_BYTES[list(b"0123456789+-.eE")] = True
SPACE_BYTES = np.zeros(256, bool)
SPACE_BYTES[list(b" \t\r\v\f")] = True


def count_runs(number):
    """The number of runs of True in the bool array number (tokens, where it marks their
    bytes)."""
    return int(np.count_nonzero(number[1:] > number[:-1])) + bool(number[:1].any())


def parse_all(text, count):
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


def count_breaks(data):
    """The number of line breaks in the bytes data: \\n, \\r\\n or a lone \\r."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def pieces(f, path, split_long_lines=False):
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
                        f"{piece[at:at + 1]!r}, on line {lineno + count_breaks(piece[:at])})"
                    ) from None
            yield piece, lineno, offset
            lineno += count_breaks(piece)
            offset += len(piece)
        if end:
            return

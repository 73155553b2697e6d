"""Reading and writing .npz files safely: entries checked before they are read and read
within bounds, files written atomically. Network and Trainer keep their formats; this module
only moves bytes."""
import io
import os
import stat
import struct
import tempfile
import zipfile

import numpy as np

# What a file can make a load read or allocate. The sizes in a zip directory are never
# trusted: an entry is read through _Entry, which counts the bytes as they are inflated.
CHUNK = 1 << 20  # bytes asked of zipfile at a time (asked for n, it may allocate n first)
MAX_HEADER = 10000  # bytes of an .npy header (NumPy's own limit, checked before the read)
SMALL = 1 << 20  # bytes of an entry read without an expected shape (names, counts, JSON)
INFLATE_RATIO = 1032  # most bytes a deflate stream inflates one byte to (258 per 2 bits)
_MAGIC = b"\x93NUMPY"
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}


class NpzReader:
    """An .npz file read entry by entry, each entry checked before it is read.

    NumPy would allocate whatever shape an entry's header declares, and zipfile inflates as
    many bytes as the zip directory says an entry holds: a 2 KB file once made a load take
    3 GB. Here an entry's .npy header is read first (its length bounded), its declared shape
    and dtype checked against what the caller expects, against the zip's stored size and
    against what a file of this size can hold at all (deflate inflates a byte to at most
    1032); only then is an array of the declared shape allocated and filled, a chunk at a
    time, from a stream that must end exactly where the header says. Every failure becomes
    one ValueError naming the file (through :meth:`checking`).
    """

    def __init__(self, path):
        self.path = path
        try:
            self.zip = zipfile.ZipFile(path)
            self.members = {i.filename: i for i in self.zip.infolist()}
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            raise
        except Exception as exc:
            raise ValueError(f"{path} is not a readable fastbp network file (not an .npz: "
                             f"truncated, corrupt, or a plain .npy?): {describe(exc)}") from None
        self.size = _file_size(self.zip.fp)  # bounds every entry; None where unknown

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.zip.close()

    def checking(self, what):
        """Context: any error inside becomes ValueError "<path> is not a valid <what>: ..."."""
        reader = self

        class _Check:
            def __enter__(self):
                return reader

            def __exit__(self, kind, exc, tb):
                if exc is None or not isinstance(exc, Exception):
                    return False
                if isinstance(exc, (FileNotFoundError, PermissionError)):
                    return False
                raise ValueError(f"{reader.path} is not a valid {what}: "
                                 f"{describe(exc)}") from None
        return _Check()

    def has(self, key):
        return key + ".npy" in self.members

    def _entry(self, key):
        """Entry key opened and its .npy header read and checked: an _Entry (a context
        manager) whose stream is positioned at the array data and bounded by its size."""
        info = self.members.get(key + ".npy")
        if info is None:
            raise KeyError(f"no entry {key!r}")
        if info.compress_type not in _METHODS:
            raise ValueError(f"entry {key!r} is compressed with method {info.compress_type}; "
                             "fastbp reads stored or deflated entries (as np.savez and "
                             "np.savez_compressed write them)")
        entry = _Entry(self.zip.open(info), key)
        try:
            entry.read_header()
            if entry.dtype.hasobject or entry.dtype.kind not in "biufU":
                raise ValueError(f"entry {key!r} has dtype {entry.dtype}")
            if entry.dtype.itemsize == 0:
                raise ValueError(f"entry {key!r} has dtype {entry.dtype}, of empty items")
            if entry.limit != info.file_size:  # a zip at odds with its entry: refused early
                raise ValueError(f"entry {key!r} declares {entry.shape} {entry.dtype} but "
                                 f"stores {info.file_size - entry.offset} bytes")
            room = self._room(info)
            if room is not None and entry.limit > room:
                raise ValueError(f"entry {key!r} declares {entry.shape} {entry.dtype} "
                                 f"({entry.nbytes} bytes); a file of {self.size} bytes holds "
                                 f"at most {room} ({_METHODS[info.compress_type]})")
        except BaseException:
            entry.close()
            raise
        return entry

    def _room(self, info):
        """Most bytes the file can hold for one entry whatever its zip directory says: the
        file's size when stored, INFLATE_RATIO times it when deflated."""
        if self.size is None:
            return None
        return self.size if info.compress_type == zipfile.ZIP_STORED else (
            INFLATE_RATIO * self.size + INFLATE_RATIO)

    def check(self, key, shape, dtype):
        """Raise ValueError unless entry key holds exactly shape and dtype (read from its
        header; the data is not read)."""
        with self._entry(key) as entry:
            _check_fit(key, entry, shape, dtype)

    def array(self, key, kinds="biufU", ndim=None, max_items=None, shape=None, dtype=None,
              max_bytes=SMALL, out=None):
        """Entry key as an array, read within bounds.

        Its header is checked first: dtype kind in ``kinds``, ``ndim`` dimensions, at most
        ``max_items`` items, and exactly ``shape`` and ``dtype`` where given (the caller
        knows them: the layer sizes make the parameters' shape); an entry without an
        expected shape may hold at most ``max_bytes`` bytes. Only then is an array of the
        declared shape allocated (or ``out`` used: a C-contiguous array of the expected shape
        and dtype, read into in place; its contents are undefined after a failure) and filled
        CHUNK bytes at a time; a stream shorter or longer than declared is a ValueError.
        """
        if out is not None:
            shape, dtype = out.shape, out.dtype
            if not (out.flags.c_contiguous and out.flags.writeable):
                raise ValueError("out must be a writable C-contiguous array")
        with self._entry(key) as entry:
            if entry.dtype.kind not in kinds:
                raise ValueError(f"{key} has dtype {entry.dtype}")
            if ndim is not None and len(entry.shape) != ndim:
                raise ValueError(f"{key} has {len(entry.shape)} dimensions; expected {ndim}")
            if max_items is not None and entry.items > max_items:
                raise ValueError(f"{key} has {entry.items} entries; at most {max_items}")
            if shape is not None or dtype is not None:
                _check_fit(key, entry, entry.shape if shape is None else shape,
                           entry.dtype if dtype is None else dtype)
            if shape is None and entry.nbytes > max_bytes:
                raise ValueError(f"{key} declares {entry.shape} {entry.dtype} "
                                 f"({entry.nbytes} bytes); at most {max_bytes} are read")
            order = "F" if entry.fortran and len(entry.shape) > 1 else "C"
            if out is not None and order == "C":
                entry.read_data(out.reshape(-1))
                entry.end()
                return out
            flat = np.ndarray(entry.items, entry.dtype)
            entry.read_data(flat)
            entry.end()
        if out is not None:
            out[...] = flat.reshape(entry.shape, order=order)
            return out
        return flat if entry.shape == flat.shape else flat.reshape(entry.shape, order=order)

    def text(self, key):
        value = self.array(key, kinds="U", ndim=0)
        return str(value)

    def integer(self, key, low=0):
        value = self.array(key, kinds="iu", ndim=0)
        if int(value) < low:
            raise ValueError(f"{key} is {int(value)}; expected >= {low}")
        return int(value)

    def boolean(self, key):
        return bool(self.array(key, kinds="b", ndim=0))


class _Entry:
    """One entry's bytes as zipfile inflates them, counted.

    zipfile is never asked for more than CHUNK bytes at once, and more than ``limit`` bytes
    in all are a ValueError as soon as they arrive: before the header is read the limit is
    the longest header, after it the header plus the data it declares. ``end`` reads on to
    the end of the stream, so that zipfile checks the entry's CRC and a longer stream is
    refused.
    """

    def __init__(self, raw, key):
        self.raw, self.key = raw, key
        self.seen = 0  # bytes read
        self.limit = len(_MAGIC) + 2 + 4 + MAX_HEADER

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.raw.close()

    def read(self, n):
        data = self.raw.read(min(n, CHUNK))
        self.seen += len(data)
        if self.seen > self.limit:
            raise ValueError(f"entry {self.key!r} holds more than the {self.limit} bytes its "
                             ".npy header declares")
        return data

    def _exactly(self, n):
        """n bytes of the header; a stream that ends first is a ValueError."""
        data = b""
        while len(data) < n:
            piece = self.read(n - len(data))
            if not piece:
                raise ValueError(f"entry {self.key!r} ends after {self.seen} bytes, within "
                                 "its .npy header")
            data += piece
        return data

    def read_header(self):
        """Magic, version (1.0 or 2.0) and header, its length checked before it is read:
        sets shape, fortran, dtype, items, nbytes, offset and the limit."""
        key = self.key
        magic = self._exactly(len(_MAGIC) + 2)
        if magic[:len(_MAGIC)] != _MAGIC:
            raise ValueError(f"entry {key!r} is not an .npy array")
        version = (magic[-2], magic[-1])
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"entry {key!r}: .npy format version {version}")
        length_format = "<H" if version == (1, 0) else "<I"
        length_bytes = self._exactly(struct.calcsize(length_format))
        length = struct.unpack(length_format, length_bytes)[0]
        if length > MAX_HEADER:
            raise ValueError(f"entry {key!r} has an .npy header of {length} bytes; at most "
                             f"{MAX_HEADER}")
        header = io.BytesIO(length_bytes + self._exactly(length))
        if version == (1, 0):
            shape, self.fortran, self.dtype = np.lib.format.read_array_header_1_0(header)
        else:
            shape, self.fortran, self.dtype = np.lib.format.read_array_header_2_0(header)
        if any(int(d) < 0 for d in shape):
            raise ValueError(f"entry {key!r} declares shape {shape}")
        self.shape = tuple(int(d) for d in shape)
        self.offset = self.seen  # the data starts after the header
        items = 1
        for d in self.shape:
            items *= d  # Python integers: no overflow
        self.items = items
        self.nbytes = items * self.dtype.itemsize
        self.limit = self.offset + self.nbytes

    def read_data(self, array):
        """Fill a contiguous array (of exactly the declared size) from the stream, CHUNK
        bytes at a time; a stream that ends first is a ValueError."""
        if array.nbytes != self.nbytes:
            raise ValueError(f"entry {self.key!r}: {array.nbytes} bytes to fill, "
                             f"{self.nbytes} declared")
        view = memoryview(array.reshape(-1).view(np.uint8))
        done = 0
        while done < len(view):
            piece = self.read(len(view) - done)
            if not piece:
                raise ValueError(f"entry {self.key!r} ends after {self.seen - self.offset} "
                                 f"bytes of data; its .npy header declares {self.nbytes}")
            view[done:done + len(piece)] = piece
            done += len(piece)

    def end(self):
        self.read(1)  # ValueError if anything follows; at the end zipfile checks the CRC


def _check_fit(key, entry, shape, dtype):
    if entry.shape != tuple(shape) or entry.dtype != np.dtype(dtype):
        raise ValueError(f"{key} of shape {entry.shape} and dtype {entry.dtype} does not fit: "
                         f"expected shape {tuple(shape)} and dtype {np.dtype(dtype)}")


def _file_size(f):
    """Size in bytes of the open file f, or None where it cannot be told."""
    try:
        return os.fstat(f.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        pass
    try:
        where = f.tell()
        size = f.seek(0, os.SEEK_END)
        f.seek(where)
        return size
    except (AttributeError, OSError, ValueError):
        return None


def describe(exc):
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "..."


def umask():
    """The process's umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting (briefly) and restoring
    os.umask(mask)
    return mask


def not_a_file(mode):
    """What a ``st_mode`` is when it is not a regular file ("a FIFO", "a folder", ...), for
    error messages; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, what in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "not a regular file"


def _mode(path):
    """``st_mode`` of path (symbolic links followed), or None where nothing is there."""
    try:
        return os.stat(path).st_mode
    except FileNotFoundError:
        return None


def _refusal(path, shown, mode):
    """The error for saving over ``path`` (symbolic links resolved), whose ``st_mode`` is
    ``mode``, when it is not a regular file; None for a regular file or nothing (``mode``
    None). A save renames its file over the path, which would turn a FIFO or a device node
    (``/dev/null``, as root) into a regular file: anything but a regular file is left as it
    is. IsADirectoryError for a folder (as ``open`` raises), OSError for the rest; both name
    ``shown``, the path as the caller gave it."""
    what = None if mode is None else not_a_file(mode)
    if what is None:
        return None
    it = "it" if os.path.abspath(shown) == path else f"it leads to {path}, which"
    message = (f"cannot save to {shown}: {it} is {what}, not a regular file (a save replaces "
               "the file at its path; anything else is left as it is)")
    return IsADirectoryError(message) if stat.S_ISDIR(mode) else OSError(message)


def write_npz(path, arrays):
    """np.savez to a temporary file beside the target, fsync, then rename over it.

    Through a symbolic link the link's target is written (as ``open(path, "wb")`` would).
    A new file gets mode 0666 & ~umask (as NumPy's own files), an existing one keeps its
    mode. A target that exists and is not a regular file (a folder, a FIFO, a device, a
    socket) is refused, before anything is written and again just before the rename, and
    left as it is: IsADirectoryError for a folder, OSError for the rest. Errors name
    ``path``, never the temporary file.
    """
    shown = path
    path = os.path.realpath(os.fspath(path))
    folder = os.path.dirname(path)
    try:
        mode = _mode(path)
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot save to {shown}: {exc.strerror}", shown) from None
    refusal = _refusal(path, shown, mode)
    if refusal is not None:
        raise refusal
    mode = 0o666 & ~umask() if mode is None else stat.S_IMODE(mode)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".fastbp-", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot save to {shown}: {exc.strerror}", shown) from None
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        # Again: something else may have been put at the path while the file was written.
        refusal = _refusal(path, shown, _mode(path))
        if refusal is None:
            os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.errno is not None:
            raise type(exc)(exc.errno, f"cannot save to {shown}: {exc.strerror}", shown) from None
        raise
    if refusal is not None:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise refusal

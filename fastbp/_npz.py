"""Reading and writing .npz files safely: entries checked before they are read, files
written atomically. Network and Trainer keep their formats; this module only moves bytes."""
import os
import stat
import tempfile
import zipfile

import numpy as np


class NpzReader:
    """An .npz file read entry by entry, each entry checked before it is read.

    NumPy would allocate whatever shape an entry's header declares; here an entry's
    declared shape and dtype are first checked against the zip member's stored size and
    against what the caller expects. Every failure becomes one ValueError naming the file.
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

    def _header(self, key):
        info = self.members.get(key + ".npy")
        if info is None:
            raise KeyError(f"no entry {key!r}")
        with self.zip.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"entry {key!r}: .npy format version {version}")
            offset = f.tell()
        if dtype.hasobject or dtype.kind not in "biufU":
            raise ValueError(f"entry {key!r} has dtype {dtype}")
        count = 1
        for d in shape:
            count *= int(d)
        if offset + count * dtype.itemsize != info.file_size:
            raise ValueError(f"entry {key!r} declares {shape} {dtype} but stores "
                             f"{info.file_size - offset} bytes")
        return tuple(int(d) for d in shape), dtype

    def check(self, key, shape, dtype):
        """Raise ValueError unless entry key holds exactly shape and dtype."""
        got_shape, got_dtype = self._header(key)
        if got_shape != tuple(shape) or got_dtype != np.dtype(dtype):
            raise ValueError(f"{key} of shape {got_shape} and dtype {got_dtype} does not fit: "
                             f"expected shape {tuple(shape)} and dtype {np.dtype(dtype)}")

    def array(self, key, kinds="biufU", ndim=None, max_items=None):
        """Entry key as an array, after checking its kind, dimensions and size."""
        shape, dtype = self._header(key)
        if dtype.kind not in kinds:
            raise ValueError(f"{key} has dtype {dtype}")
        if ndim is not None and len(shape) != ndim:
            raise ValueError(f"{key} has {len(shape)} dimensions; expected {ndim}")
        if max_items is not None and int(np.prod(shape)) > max_items:
            raise ValueError(f"{key} has {int(np.prod(shape))} entries; at most {max_items}")
        if dtype.kind == "U" and dtype.itemsize > 4 * (1 << 20):
            raise ValueError(f"{key} is a string of {dtype.itemsize // 4} characters")
        with self.zip.open(self.members[key + ".npy"]) as f:
            return np.lib.format.read_array(f, allow_pickle=False)

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


def write_npz(path, arrays):
    """np.savez to a temporary file beside the target, fsync, then rename over it.

    Through a symbolic link the link's target is written (as ``open(path, "wb")`` would).
    A new file gets mode 0666 & ~umask (as NumPy's own files), an existing one keeps its
    mode. Errors name ``path``, never the temporary file.
    """
    shown = path
    path = os.path.realpath(os.fspath(path))
    folder = os.path.dirname(path)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~umask()
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot save to {shown}: {exc.strerror}", shown) from None
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
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.errno is not None:
            raise type(exc)(exc.errno, f"cannot save to {shown}: {exc.strerror}", shown) from None
        raise

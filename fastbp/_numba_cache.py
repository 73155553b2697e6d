"""Numba's on-disk cache, made fail-safe for fastbp's kernels.

Numba's cache (``numba.core.caching``) stops fastbp in two ways, both fixed here for the
functions of fastbp's own modules only (``py_func.__module__`` starting ``fastbp.``):

- No writable cache folder (``NUMBA_CACHE_DIR``, the package's ``__pycache__`` folders
  and ``~/.cache/numba`` all read-only or impossible): ``@njit(cache=True)`` sets the cache
  up when it decorates, so importing a kernel module raises ``RuntimeError: cannot cache
  function ...: no locator available``. A last locator, appended to
  ``CacheImpl._locator_classes``, then caches fastbp's kernels in a private folder under
  the temp dir: one per user (``fastbp-numba-cache-<uid>``, made 0700, checked to be a
  folder owned by the user that no one else may write, so nobody can plant code in it
  for this user to load), else one for this
  process (``tempfile.mkdtemp``, removed at exit), else nowhere (the kernels compile in
  every process). One ``NumbaCacheWarning`` per process says so and how to fix it.
- A corrupt entry (a garbage or truncated ``.nbi`` index or ``.nbc`` data file, or a
  pickle of the wrong thing): unpickling errors escape ``Cache.load_overload`` on every
  run. ``Cache.load_overload`` is wrapped so that any error is a cache miss: an
  unreadable index is reset to an empty one, the kernel compiles, ``save_overload``
  overwrites the entry (the next run loads it cleanly), and one ``NumbaCacheWarning``
  per process says so. ``save_overload`` is wrapped likewise: a write that fails on an
  unreadable index resets it and tries once more; one that still fails (a folder that
  became read-only, a full disk) warns once and leaves the compiled kernel in memory.
  (A data file of another function, which Numba would run with the wrong arguments, is
  a miss too: the loaded ``fndesc.qualname`` must be the function's.)

``fastbp.kernels`` imports this module before any kernel module, without importing Numba
(``import fastbp`` stays light): a finder on ``sys.meta_path`` patches
``numba.core.caching`` -- and numba-cuda's copy, ``numba.cuda.core.caching`` -- right
after they are first imported, or at once if they already are. The patch is idempotent
(a marker on each module). It relies on these internals of both modules:
``CacheImpl._locator_classes`` (a list), ``_CacheLocator`` and
``_SourceFileBackedLocatorMixin`` (``_py_file``, ``_lineno``, ``get_cache_path``), and
``Cache.load_overload``, ``Cache.save_overload``, ``Cache._py_func``, ``Cache._impl``,
``Cache._cache_file`` with ``IndexDataCacheFile._load_index`` and ``flush``. Should a
Numba release rename any of them, the part that needs it is skipped silently and Numba
behaves as it does unpatched; nothing here can make importing fastbp fail.
"""
import atexit
import os
import shutil
import stat
import sys
import tempfile
import threading
import warnings

__all__ = ["NumbaCacheWarning", "install"]

_TARGETS = ("numba.core.caching", "numba.cuda.core.caching")
_MARK = "_fastbp_cache_patched"
_FIX = "Set NUMBA_CACHE_DIR to a writable folder to keep compiled kernels between runs."


class NumbaCacheWarning(RuntimeWarning):
    """Numba's on-disk cache could not be used as is; fastbp worked around it."""


_lock = threading.RLock()
_warned = set()
_private = None  # (folder or None, "user" | "process" | "none") once decided


def _is_ours(py_func):
    module = getattr(py_func, "__module__", None) or ""
    return module == "fastbp" or module.startswith("fastbp.")


def _warn_once(key, message):
    """Warns once per process for each key, at the line of the caller's own code that
    imported or first called a kernel: the first frame outside fastbp, Numba and the
    import machinery."""
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    inside = [os.path.dirname(os.path.abspath(__file__))]
    for name in ("numba", "numba_cuda"):
        path = getattr(sys.modules.get(name), "__file__", None)
        if path:
            inside.append(os.path.dirname(os.path.abspath(path)))
    frame = sys._getframe(1)
    while frame.f_back is not None and (
            frame.f_code.co_filename.startswith("<frozen ")
            or any(frame.f_code.co_filename.startswith(folder + os.sep) for folder in inside)):
        frame = frame.f_back
    where = frame.f_globals
    warnings.warn_explicit(message, NumbaCacheWarning, frame.f_code.co_filename,
                           frame.f_lineno, module=where.get("__name__", "__main__"),
                           registry=where.setdefault("__warningregistry__", {}))


def cached_between_runs():
    """False once fastbp's kernels had to be put in a cache of this process only, or in
    none (for the compile notice)."""
    return _private is None or _private[1] == "user"


# -- a private cache folder ----------------------------------------------------------------

def _probe(path):
    """Raises OSError unless a file can be made in ``path``."""
    tempfile.TemporaryFile(dir=path).close()


def _user_folder(tmp):
    """The per-user folder under the temp dir, made 0700; OSError unless it is a real
    folder (not a link) owned by this user that no one else may write. (Numba's own
    makedirs may remake it 0755 if a cleaner removes it while a process runs: fine.)"""
    if not hasattr(os, "geteuid"):  # Windows: the temp dir is the user's own
        path = os.path.join(tmp, "fastbp-numba-cache")
        os.makedirs(path, exist_ok=True)
        _probe(path)
        return path
    path = os.path.join(tmp, f"fastbp-numba-cache-{os.geteuid()}")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if (not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid()
            or stat.S_IMODE(st.st_mode) & 0o022):
        raise PermissionError(f"{path} is not a private folder of this user")
    _probe(path)
    return path


def _private_folder():
    """(folder, how): the folder fastbp's kernels are cached in when Numba has none,
    decided once per process."""
    global _private
    with _lock:
        if _private is None:
            _private = _make_private_folder()
        return _private


def _make_private_folder():
    try:
        tmp = tempfile.gettempdir()
    except OSError:  # no usable temp dir at all
        return None, "none"
    try:
        return _user_folder(tmp), "user"
    except OSError:
        pass
    try:
        path = tempfile.mkdtemp(prefix="fastbp-numba-")
    except OSError:
        return None, "none"
    atexit.register(shutil.rmtree, path, True)
    return path, "process"


def _numba_folders(caching, py_file):
    """Where Numba looked, for the warning."""
    where = []
    try:
        cache_dir = caching.config.CACHE_DIR
    except Exception:
        cache_dir = None
    where.append(f"NUMBA_CACHE_DIR={cache_dir!r}" if cache_dir else "NUMBA_CACHE_DIR unset")
    where.append(os.path.join(os.path.dirname(py_file), "__pycache__"))
    try:
        where.append(caching.AppDirs(appname="numba", appauthor=False).user_cache_dir)
    except Exception:
        pass
    return ", ".join(where)


def _fallback_locator(caching):
    """A last locator class for ``caching``: fastbp's functions in the private folder."""

    class FastbpFallbackLocator(caching._SourceFileBackedLocatorMixin,
                                caching._CacheLocator):
        """fastbp's kernels when no other locator of Numba's can write: a private folder
        under the temp dir, or none (``_root`` None: the cache is then never touched)."""

        def __init__(self, py_func, py_file, root):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._root = root
            # Never None: Cache() joins file names onto it even when it is not used.
            base = root if root is not None else os.path.join(os.devnull, "fastbp")
            self._cache_path = os.path.join(base, self.get_suitable_cache_subpath(py_file))

        def get_cache_path(self):
            return self._cache_path

        def ensure_cache_path(self):
            if self._root is None:
                raise OSError("fastbp: Numba's cache is off in this process")
            super().ensure_cache_path()

        @classmethod
        def from_function(cls, py_func, py_file):
            if not _is_ours(py_func) or not os.path.exists(py_file):
                return None
            root, how = _private_folder()
            self = cls(py_func, py_file, root)
            if root is not None:
                try:
                    self.ensure_cache_path()
                except OSError:
                    self, how = cls(py_func, py_file, None), "none"
            if how == "user":
                outcome = f"fastbp caches its kernels in {root} instead"
            elif how == "process":
                outcome = (f"fastbp caches its kernels in {root}, a temporary folder of "
                           "this process only, so every run compiles them again")
            else:
                outcome = ("fastbp compiles its kernels without caching them, so every "
                           "run compiles them again")
            _warn_once("locator",
                       "fastbp: Numba found no writable folder for its on-disk cache of "
                       f"compiled kernels ({_numba_folders(caching, py_file)}); {outcome}. "
                       + _FIX)
            return self

    FastbpFallbackLocator.__qualname__ = FastbpFallbackLocator.__name__
    return FastbpFallbackLocator


# -- corrupt entries -----------------------------------------------------------------------

def _uncached(cache):
    """True for a fastbp function whose fallback locator has no folder."""
    locator = getattr(getattr(cache, "_impl", None), "locator", None)
    return getattr(locator, "_fastbp_fallback", False) and locator._root is None


def _reset_index_if_unreadable(cache):
    """Replaces an index that does not load as {key: data file name} with an empty one,
    so that the save after the recompilation writes a fresh entry; True if it did."""
    cache_file = getattr(cache, "_cache_file", None)
    if cache_file is None:
        return False
    try:
        index = cache_file._load_index()
        if isinstance(index, dict) and all(isinstance(v, str) for v in index.values()):
            return False
    except Exception:
        pass
    try:
        cache_file.flush()  # _save_index({})
    except Exception:
        return False
    return True


def _qualname(cache):
    py_func = getattr(cache, "_py_func", None)
    return getattr(py_func, "__qualname__", None) or getattr(py_func, "__name__", "?")


def _for_ours(original, guarded):
    """Numba's Cache method ``original`` with ``guarded(self, ...)`` run in its place for
    fastbp's functions, and nothing done for those the fallback locator left uncached."""
    def method(self, *args, **kwargs):
        if not _is_ours(getattr(self, "_py_func", None)):
            return original(self, *args, **kwargs)
        if _uncached(self):
            return None
        return guarded(self, *args, **kwargs)

    method._fastbp_original = original
    return method


def _wrap_load(load):
    def guarded_load(self, sig, target_context):
        try:
            data = load(self, sig, target_context)
            # A data file of another function (entries swapped or copied around).
            loaded = getattr(getattr(data, "fndesc", None), "qualname", None)
            if loaded is not None and loaded != _qualname(self):
                raise ValueError(f"the entry holds {loaded!r}")
        except Exception as exc:
            _reset_index_if_unreadable(self)
            _warn_once("corrupt",
                       f"fastbp: Numba's cache entry for {_qualname(self)} in "
                       f"{getattr(self, 'cache_path', '?')} is unreadable "
                       f"({type(exc).__name__}: {exc}); compiling it again and "
                       "overwriting the entry.")
            return None
        return data

    return _for_ours(load, guarded_load)


def _wrap_save(save):
    def guarded_save(self, sig, data):
        try:
            return save(self, sig, data)
        except Exception as exc:
            error = exc
        if _reset_index_if_unreadable(self):  # an index that would not load: once more
            try:
                return save(self, sig, data)
            except Exception as exc:
                error = exc
        _warn_once("save",
                   f"fastbp: could not write Numba's cache entry for {_qualname(self)} in "
                   f"{getattr(self, 'cache_path', '?')} ({type(error).__name__}: {error}); "
                   "the compiled kernel works, but the next run compiles it again. " + _FIX)
        return None

    return _for_ours(save, guarded_save)


# -- installing ----------------------------------------------------------------------------

def _patch(caching):
    """Patches one caching module (numba's or numba-cuda's); idempotent, and a no-op for
    a module whose internals are not the ones this relies on."""
    with _lock:
        if getattr(caching, _MARK, False):
            return
        try:
            impl = caching.CacheImpl
            locators = impl._locator_classes
            cache = caching.Cache
            load, save = cache.load_overload, cache.save_overload
            locator = _fallback_locator(caching)
        except Exception:
            return
        locator._fastbp_fallback = True
        if isinstance(locators, list) and not any(
                getattr(c, "_fastbp_fallback", False) for c in locators):
            locators.append(locator)
        if not hasattr(load, "_fastbp_original"):
            cache.load_overload = _wrap_load(load)
        if not hasattr(save, "_fastbp_original"):
            cache.save_overload = _wrap_save(save)
        setattr(caching, _MARK, True)


class _PatchingLoader:
    """Runs a module's own loader, then patches the module."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module):
        self._loader.exec_module(module)
        try:
            _patch(module)
        except Exception:
            pass

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _PatchOnImport:
    """A ``sys.meta_path`` finder that hands the caching modules to _PatchingLoader.
    It asks the finders after it for the real spec (re-entrant calls, as numba-cuda's
    redirecting finder makes, pass through)."""

    _busy = threading.local()

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _TARGETS or getattr(self._busy, "on", False):
            return None
        self._busy.on = True
        try:
            spec = None
            for finder in list(sys.meta_path):
                find = getattr(finder, "find_spec", None)
                if finder is self or find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    break
            if spec is None or not hasattr(spec.loader, "exec_module"):
                return None
            spec.loader = _PatchingLoader(spec.loader)
            return spec
        except Exception:  # the import goes on as if this finder were not here
            return None
        finally:
            self._busy.on = False


def install():
    """Patches the caching modules already imported and the others when they are."""
    with _lock:
        if not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
            sys.meta_path.insert(0, _PatchOnImport())
    for name in _TARGETS:
        module = sys.modules.get(name)
        if module is not None:
            try:
                _patch(module)
            except Exception:
                pass


install()

"""One line on stderr when fastbp's CPU kernels start compiling, so a first run that spends
seconds in Numba's compiler says so instead of hanging silently. Later runs load the
compiled code from Numba's on-disk cache and print nothing (where Numba's cache cannot be
kept, fastbp._numba_cache warns, and this line says that every run compiles)."""
import sys

from numba.core import event, types

from fastbp import _numba_cache


class _Notice(event.Listener):
    """Prints once per process, at the first compilation of a fastbp kernel."""

    said = False

    def on_start(self, ev):
        dispatcher = ev.data.get("dispatcher")
        module = getattr(getattr(dispatcher, "py_func", None), "__module__", "")
        if self.said or not module.startswith("fastbp."):
            return
        self.said = True
        # The working dtype is that of the first float array: params, or a workspace.
        dtypes = [a.dtype for a in ev.data.get("args", ())
                  if isinstance(a, types.Array) and isinstance(a.dtype, types.Float)]
        what = f" for {dtypes[0]}" if dtypes else ""
        when = ("first run only; Numba caches them" if _numba_cache.cached_between_runs()
                else "every run: Numba's cache is not kept, see the warning")
        print(f"fastbp: compiling kernels{what} ({when})...", file=sys.stderr, flush=True)

    def on_end(self, ev):
        pass


event.register("numba:compile", _Notice())

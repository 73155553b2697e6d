"""One line on stderr when fastbp's CPU kernels start compiling, so a first run that spends
seconds in Numba's compiler says so instead of hanging silently. Later runs load the
compiled code from Numba's on-disk cache and print nothing."""
import sys

from numba.core import event, types


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
        print(f"fastbp: compiling kernels{what} (first run only; Numba caches them)...",
              file=sys.stderr, flush=True)

    def on_end(self, ev):
        pass


event.register("numba:compile", _Notice())

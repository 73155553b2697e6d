"""Dask worker preload: this worker cannot import fastbp."""
import sys


class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "fastbp" or name.startswith("fastbp."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Block())
for name in [m for m in sys.modules if m == "fastbp" or m.startswith("fastbp.")]:
    del sys.modules[name]

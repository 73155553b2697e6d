"""Wall time of the first runs a new user makes, each in a fresh process with an empty
Numba cache (so every kernel it needs is compiled), then once more with that cache (so
they are loaded): `fastbp train --epochs 1`, a first MLPClassifier fit on float64 data
(scikit-learn's default dtype), and a first Sweep of 64-32-10 models. With --warm, every
case starts from a cache that `fastbp warmup` filled instead.

    python dev/cold_starts.py [--warm] [case ...]      cases: train clf64 sweep
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

_DIGITS = "import fastbp; from fastbp.datasets import load_digits; X, y = load_digits(); "
CASES = {
    "train": [sys.executable, "-m", "fastbp", "train", "--epochs", "1"],
    "clf64": [sys.executable, "-c", _DIGITS
              + "fastbp.MLPClassifier(max_iter=2).fit(X.astype('float64'), y)"],
    "sweep": [sys.executable, "-c", _DIGITS
              + "fastbp.Sweep([64, 32, 10], activations=['tanh', 'softmax'], "
                "loss='cross_entropy', batch_size=16, "
                "grid={'learning_rate': [0.1, 0.03]}).fit(X, y, epochs=1)"],
}


def seconds(command, cache):
    start = time.perf_counter()
    subprocess.run(command, env=dict(os.environ, NUMBA_CACHE_DIR=cache), check=True,
                   capture_output=True)
    return time.perf_counter() - start


def main(argv):
    warm = "--warm" in argv
    names = [a for a in argv if a != "--warm"] or list(CASES)
    with tempfile.TemporaryDirectory() as warmed:
        if warm:  # one cache filled by `fastbp warmup`, copied for each case
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "fastbp", "warmup"], check=True,
                           env=dict(os.environ, NUMBA_CACHE_DIR=warmed), capture_output=True)
            print(f"fastbp warmup: {time.perf_counter() - start:.0f} s", flush=True)
        for name in names:
            with tempfile.TemporaryDirectory() as cache:
                if warm:
                    shutil.copytree(warmed, cache, dirs_exist_ok=True)
                first = seconds(CASES[name], cache)
                again = seconds(CASES[name], cache)
            print(f"{name}: {'after warmup' if warm else 'empty cache'} {first:.1f} s, "
                  f"cached {again:.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

"""Numba compilation flags: the one place they are set."""

# fastmath without "nnan"/"ninf", so NaN and infinity checks keep working.
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})

# Loop kernels are compiled lazily, once per dtype, and cached on disk.
# error_model="numpy": a division by zero gives inf/nan instead of an exception check.
JIT = dict(nogil=True, cache=True, fastmath=set(FASTMATH), error_model="numpy")

# For arithmetic whose order is its accuracy (the range reduction of vmath's float32 exp):
# the same, without "reassoc", which would let LLVM regroup it.
JIT_EXACT = dict(JIT, fastmath=set(FASTMATH - {"reassoc"}))

"""Numba compilation flags: the one place they are set."""

# No fast-math flags at all: every kernel rounds exactly as its source says. With
# "reassoc" LLVM regroups sums, with "contract" it fuses a * b + c into one rounding, and
# with either it decides differently in each compiled context -- the same kernel inlined
# into a whole-fit call, an epoch call or a sweep gave different last bits, so fits that
# must agree bit for bit did not. Kernels vectorize across independent outputs instead
# (loop_tiles), which needs no regrouping, and fuse a multiply-add where the source says
# so (vmath.madd), which then happens in every context alike.
FASTMATH = False

# Loop kernels are compiled lazily, once per dtype, and cached on disk.
# error_model="numpy": a division by zero gives inf/nan instead of an exception check.
JIT = dict(nogil=True, cache=True, fastmath=FASTMATH, error_model="numpy")

# For the steps of hot per-sample loops that allocate nothing: compiled without Numba's
# reference counting, whose atomic increments and decrements of every array passed to a
# step would cost more per sample than the arithmetic of a small network.
JIT_NO_NRT = dict(JIT, _nrt=False)

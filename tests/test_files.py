"""Saved files: loads bounded by what a file holds whatever its zip directory says, networks
built from the parameters read (no random network of the declared size first), and saves that
replace nothing but a regular file. Each test failed before its fix.

The crafted files are written entry by entry with zipfile (a deflate stream of zeros inflates
about a thousandfold), then their zip sizes are patched with struct where a test needs them to
lie. Memory is measured with tracemalloc (NumPy reports its buffers to it); no test times
anything.
"""
import io
import os
import stat
import struct
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

import fastbp
from fastbp import _npz

MiB = 1 << 20
SMALL_PEAK = 8 * MiB  # what a refused file may cost: headers and one read chunk, not its data


# -- crafting files ----------------------------------------------------------------------------

def _npy(array):
    f = io.BytesIO()
    np.save(f, array, allow_pickle=False)
    return f.getvalue()


def _npy_header(shape, dtype):
    """An .npy header (magic included) declaring shape and dtype, with no data after it."""
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                             "fortran_order": False, "shape": tuple(shape)})
    return f.getvalue()


def _zeros(n):
    """n zero bytes, a MiB at a time (a bomb is never held whole by the test either)."""
    while n > 0:
        yield bytes(min(n, MiB))
        n -= MiB


def _network_entries(sizes, params, dtype="float64"):
    """The entries of a Network file for ``sizes``, with ``params`` (bytes, or an iterable of
    byte strings: a header and whatever data the test wants) as the params entry."""
    return {"format": _npy(np.array("fastbp.Network")), "version": _npy(np.array(1)),
            "sizes": _npy(np.array(sizes)),
            "activations": _npy(np.array(["tanh"] * (len(sizes) - 1))),
            "loss": _npy(np.array("mse")), "dtype": _npy(np.array(dtype)),
            "bias": _npy(np.array(True)), "params": params}


def _write(path, entries, deflate=()):
    """A zip of ``name.npy`` entries (each bytes or an iterable of byte strings), written as
    np.savez would; the entries named in ``deflate`` deflated (as np.savez_compressed)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in entries.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED
            with zf.open(info, "w") as f:
                for piece in [content] if isinstance(content, bytes) else content:
                    f.write(piece)
    return path


def _patch(path, name, **fields):
    """Overwrite ``crc``, ``compress_size`` or ``file_size`` of entry ``name`` (.npy added) in
    both its local header and its central directory record."""
    name = (name + ".npy").encode()
    blob = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        local = zf.getinfo(name.decode()).header_offset
    central = [i for i in range(len(blob) - 46) if blob[i:i + 4] == b"PK\x01\x02"
               and blob[i + 46:i + 46 + len(name)] == name]
    assert blob[local:local + 4] == b"PK\x03\x04" and len(central) == 1
    where = {"crc": (14, 16), "compress_size": (18, 20), "file_size": (22, 24)}
    for field, value in fields.items():
        struct.pack_into("<I", blob, local + where[field][0], value)
        struct.pack_into("<I", blob, central[0] + where[field][1], value)
    path.write_bytes(bytes(blob))
    return path


def _refused(path, load=fastbp.Network.load):
    """(message, tracemalloc peak) of a load that must raise ValueError naming path."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as info:
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value)
    return str(info.value), peak


def _n_params(sizes):
    return sum(b * (a + 1) for a, b in zip(sizes[:-1], sizes[1:]))


@pytest.fixture
def good(tmp_path):
    """A small saved network's entries (as bytes), for files that alter one of them."""
    net = fastbp.Network([3, 5, 2], activations="tanh", dtype="float64", seed=0)
    net.save(tmp_path / "good.npz")
    with zipfile.ZipFile(tmp_path / "good.npz") as zf:
        entries = {n[:-4]: zf.read(n) for n in zf.namelist()}
    return net, entries


# -- 1. bounded loads: sizes in the zip directory are never trusted ---------------------------

@pytest.mark.parametrize("deflate", [False, True], ids=["stored", "deflated"])
def test_an_npy_header_length_that_lies_is_refused_before_it_is_read(tmp_path, good, deflate):
    # A version 2.0 header may declare up to 4 GiB of header; NumPy reads all of it before
    # checking its size. Deflated, 200 MiB of "header" fit in a 200 KiB file; stored, the
    # zip's sizes say so (zipfile then asked the file for 200 MiB in one read).
    _, entries = good
    lie = 200 * MiB
    head = b"\x93NUMPY\x02\x00" + struct.pack("<I", lie)
    path = tmp_path / "header.npz"
    if deflate:
        _write(path, {**entries, "format": [head, *_zeros(lie)]}, deflate={"format"})
    else:
        _write(path, {**entries, "format": head + b"{" * 100})
        _patch(path, "format", compress_size=len(head) + lie, file_size=len(head) + lie)
    for load in (fastbp.Network.load, fastbp.Trainer.load):
        message, peak = _refused(path, load)
        assert peak < SMALL_PEAK, f"{peak / MiB:.0f} MiB to refuse a lying header length"
    assert "header of 209715200 bytes" in message


@pytest.mark.parametrize("how", ["stored-file-size-lies", "deflated-bomb"])
def test_an_entry_without_an_expected_shape_is_bounded_before_it_is_read(tmp_path, good, how):
    # activations: 1024 names of 16384 characters, 64 MiB. Stored: the data is 100 bytes and
    # the zip's file_size is patched to agree with the header. Deflated: all 64 MiB (of
    # zeros) are there, in a file of some 70 KiB. Either way the file was read into a
    # 64 MiB array before anything looked at a name.
    _, entries = good
    header = _npy_header((1024,), "<U16384")
    declared = len(header) + 1024 * 16384 * 4
    path = tmp_path / "names.npz"
    if how == "deflated-bomb":
        _write(path, {**entries, "activations": [header, *_zeros(declared - len(header))]},
               deflate={"activations"})
    else:
        _write(path, {**entries, "activations": header + b"\0" * 100})
        _patch(path, "activations", file_size=declared)
    message, peak = _refused(path)
    assert peak < SMALL_PEAK, f"{peak / MiB:.0f} MiB to refuse 64 MiB of names"
    assert "activations" in message and "at most" in message


@pytest.mark.parametrize("lie", ["honest", "says-small", "says-small-crc-too", "says-huge"])
def test_a_deflate_bomb_under_a_small_header_is_refused_without_inflating_it(tmp_path, good,
                                                                             lie):
    # sizes declares three int64 (24 bytes); its stream inflates to 64 MiB more.
    net, entries = good
    path = _write(tmp_path / "bomb.npz", {**entries, "sizes": [entries["sizes"],
                                                               *_zeros(64 * MiB)]},
                  deflate={"sizes"})
    if lie == "says-small":  # as declared by the header (the CRC is the whole stream's)
        _patch(path, "sizes", file_size=len(entries["sizes"]))
    elif lie == "says-small-crc-too":  # the zip describes exactly the entry declared
        _patch(path, "sizes", file_size=len(entries["sizes"]),
               crc=zlib.crc32(entries["sizes"]))
    elif lie == "says-huge":
        _patch(path, "sizes", file_size=(1 << 31) - 1)
    tracemalloc.start()
    try:
        try:
            loaded = fastbp.Network.load(path)
        except ValueError as exc:
            assert str(path) in str(exc) and "sizes" in str(exc)
        else:  # the fuzz tests' promise: a ValueError naming the file, or the numbers saved
            np.testing.assert_array_equal(loaded.params, net.params)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < SMALL_PEAK


SIZES = [2000, 2000, 2]  # 4,006,002 float64 parameters: 32 MB, legal
NBYTES = _n_params(SIZES) * 8


@pytest.mark.parametrize("case", ["bomb", "too-long", "says-huge", "too-short",
                                  "too-short-stored", "too-short-in-a-big-file"])
def test_params_that_fit_the_sizes_but_not_their_data(tmp_path, case):
    """params declares exactly the shape the layer sizes make; its data does not hold that.
    Refused with at most the declared array (32 MB) allocated, where the file could hold it,
    and nothing of that size where it cannot (a short stream in a small file)."""
    header = _npy_header((_n_params(SIZES),), "float64")
    declared = len(header) + NBYTES
    data, deflate, patch, peak_allowed = {
        # inflates to 64 MiB past the declared array; the zip says it holds exactly that
        "bomb": ([header, *_zeros(NBYTES + 64 * MiB)], True, dict(file_size=declared),
                 NBYTES + SMALL_PEAK),
        "too-long": ([header, *_zeros(NBYTES + 1024)], True, {}, SMALL_PEAK),
        "says-huge": ([header, *_zeros(NBYTES)], True, dict(file_size=(1 << 31) - 1),
                      SMALL_PEAK),
        # 1000 bytes of data where 32 MB are declared (and the zip agrees with the header)
        "too-short": ([header, b"\1" * 1000], True, dict(file_size=declared), SMALL_PEAK),
        "too-short-stored": ([header, b"\1" * 1000], False, dict(file_size=declared),
                             SMALL_PEAK),
        # 16 MiB of data in a file big enough to inflate to 32 MB: read, found short
        "too-short-in-a-big-file": ([header, np.random.default_rng(0).bytes(64 * 1024),
                                     *_zeros(16 * MiB)], True, dict(file_size=declared),
                                    NBYTES + SMALL_PEAK),
    }[case]
    path = _write(tmp_path / f"{case}.npz", _network_entries(SIZES, data),
                  deflate={"params"} if deflate else ())
    if patch:
        _patch(path, "params", **patch)
    for load in (fastbp.Network.load, fastbp.Trainer.load):
        message, peak = _refused(path, load)
        assert peak < peak_allowed, (f"{case}: {peak / MiB:.0f} MiB to refuse a "
                                     f"{NBYTES / MiB:.0f} MiB params entry")
        assert "params" in message


def test_entries_compressed_other_than_by_numpy_are_refused(tmp_path, good):
    # bzip2 and lzma inflate far more than deflate's 1032:1, which bounds what a file holds.
    _, entries = good
    path = tmp_path / "bzip2.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_BZIP2) as zf:
        for name, content in entries.items():
            zf.writestr(name + ".npy", content)
    message, _ = _refused(path)
    assert "compressed with method 12" in message


# -- 2. load builds no random network of the declared size --------------------------------------

def test_a_large_declared_network_with_truncated_params_fails_before_allocating(tmp_path):
    # 25 million float64 parameters (200 MB, a legal network) declared, 4 KiB stored, the
    # zip's sizes patched to agree with the header: load used to build a random network of
    # that size (400 MB with its random draws) before reading the params entry.
    sizes = [5000, 5000, 2]
    header = _npy_header((_n_params(sizes),), "float64")
    for deflate in (False, True):
        path = _write(tmp_path / f"truncated-{deflate}.npz",
                      _network_entries(sizes, [header, b"\1" * 4096]),
                      deflate={"params"} if deflate else ())
        _patch(path, "params", file_size=len(header) + _n_params(sizes) * 8)
        for load in (fastbp.Network.load, fastbp.Trainer.load):
            message, peak = _refused(path, load)
            assert peak < SMALL_PEAK, f"{peak / MiB:.0f} MiB to refuse a truncated file"
            assert "params" in message


def test_load_draws_no_random_weights(tmp_path, monkeypatch):
    net = fastbp.Network([4, 6, 3], activations=["relu", "softmax"], loss="cross_entropy",
                         seed=1)
    trainer = fastbp.Trainer(net, optimizer="adam", seed=2)
    net.save(tmp_path / "net.npz")
    trainer.save(tmp_path / "trainer.npz")

    def no_drawing(self, seed=None):
        raise AssertionError("load drew random weights")
    monkeypatch.setattr(fastbp.Network, "initialize", no_drawing)
    np.testing.assert_array_equal(fastbp.Network.load(tmp_path / "net.npz").params, net.params)
    np.testing.assert_array_equal(fastbp.Trainer.load(tmp_path / "trainer.npz").net.params,
                                  net.params)


@pytest.mark.parametrize("kw", [dict(activations="tanh"),
                                dict(activations=["relu", "sigmoid", "softmax"],
                                     loss="cross_entropy", bias=False),
                                dict(activations=["identity", "tanh", "sigmoid"],
                                     loss="cross_entropy")])
def test_a_loaded_network_is_the_network_saved(tmp_path, dtype, kw):
    net = fastbp.Network([5, 7, 4, 3], dtype=dtype, seed=3, **kw)
    net.params = np.random.default_rng(4).normal(size=net.n_params)
    net.save(tmp_path / "net.npz")
    loaded = fastbp.Network.load(tmp_path / "net.npz")
    assert type(loaded) is fastbp.Network and repr(loaded) == repr(net)
    assert loaded.params.dtype == dtype and loaded.params.shape == (net.n_params,)
    np.testing.assert_array_equal(loaded.params, net.params)
    # Every attribute as the constructor sets it (load builds the network another way).
    assert sorted(vars(loaded)) == sorted(vars(net))
    for name, value in vars(net).items():
        if isinstance(value, np.ndarray):
            assert vars(loaded)[name].dtype == value.dtype, name
            np.testing.assert_array_equal(vars(loaded)[name], value, err_msg=name)
        else:
            assert vars(loaded)[name] == value, name
    flags = loaded.params.flags
    assert flags.c_contiguous and flags.writeable and flags.owndata
    np.testing.assert_array_equal(loaded.weights[1], net.weights[1])


def test_a_loaded_trainer_holds_the_state_saved_even_in_fortran_order(tmp_path, dtype):
    net = fastbp.Network([3, 4, 2], dtype=dtype, seed=0)
    trainer = fastbp.Trainer(net, optimizer="rprop", seed=5)
    trainer.state[...] = np.random.default_rng(6).uniform(0.1, 1, trainer.state.shape)
    trainer.save(tmp_path / "trainer.npz")
    loaded = fastbp.Trainer.load(tmp_path / "trainer.npz")
    assert loaded.state.dtype == dtype and loaded.state.flags.c_contiguous
    np.testing.assert_array_equal(loaded.state, trainer.state)
    np.testing.assert_array_equal(loaded.net.params, net.params)
    with np.load(tmp_path / "trainer.npz") as f:
        entries = {k: f[k] for k in f.files}
    entries["trainer_state"] = np.asfortranarray(entries["trainer_state"])
    np.savez(tmp_path / "fortran.npz", **entries)
    loaded = fastbp.Trainer.load(tmp_path / "fortran.npz")
    assert loaded.state.flags.c_contiguous
    np.testing.assert_array_equal(loaded.state, trainer.state)


# -- 3. a save replaces nothing but a regular file ----------------------------------------------

def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".fastbp-")]


@pytest.mark.parametrize("through_link", [False, True])
def test_saving_onto_a_fifo_leaves_the_fifo(tmp_path, through_link):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    target = fifo
    if through_link:
        target = tmp_path / "link.npz"
        target.symlink_to(fifo)
    net = fastbp.Network([3, 2], seed=0)
    for save in (net.save, fastbp.Trainer(net).save):
        with pytest.raises(OSError, match="is a FIFO, not a regular file") as info:
            save(target)
        assert str(target) in str(info.value)
        assert stat.S_ISFIFO(os.stat(fifo).st_mode) and not _leftovers(tmp_path)
        assert target.is_symlink() == through_link


def test_saving_onto_a_folder_names_it_and_writes_nothing(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    net = fastbp.Network([3, 2], seed=0)
    for save in (net.save, fastbp.Trainer(net).save):
        with pytest.raises(IsADirectoryError, match="is a folder, not a regular file") as info:
            save(folder)
        assert str(folder) in str(info.value)
        assert folder.is_dir() and not list(folder.iterdir()) and not _leftovers(tmp_path)


def test_saving_onto_a_device_is_refused(tmp_path, monkeypatch):
    # As root, net.save("/dev/null") replaced the device node with a regular file. Tests never
    # touch /dev/null: os.stat says this path is a character device.
    target = tmp_path / "null"
    real_stat = os.stat

    def as_a_device(path, *args, **kwargs):
        if os.fspath(path) in (str(target), os.path.realpath(target)):
            return os.stat_result((stat.S_IFCHR | 0o666, 0, 0, 1, 0, 0, 0, 0, 0, 0))
        return real_stat(path, *args, **kwargs)
    monkeypatch.setattr(os, "stat", as_a_device)
    with pytest.raises(OSError, match="null: it is a character device, not a regular file"):
        fastbp.Network([3, 2], seed=0).save(target)
    assert not os.path.lexists(target) and not _leftovers(tmp_path)  # lstat: not patched


@pytest.mark.parametrize("mode,what", [(stat.S_IFDIR, "a folder"), (stat.S_IFIFO, "a FIFO"),
                                       (stat.S_IFCHR, "a character device"),
                                       (stat.S_IFBLK, "a block device"),
                                       (stat.S_IFSOCK, "a socket"), (stat.S_IFREG, None)])
def test_what_a_save_target_is(mode, what):
    assert _npz.not_a_file(mode | 0o644) == what


def test_an_entry_stream_must_end_exactly_where_its_header_says():
    # zipfile stops at the size its directory declares; the count does not rely on that.
    npy = _npy(np.arange(3, dtype=np.int64))
    for blob, error in ((npy + b"\0", "holds more than the 152 bytes its .npy header declares"),
                        (npy[:-1], "ends after 23 bytes of data; its .npy header declares 24")):
        entry = _npz._Entry(io.BytesIO(blob), "sizes")
        entry.read_header()
        with pytest.raises(ValueError, match=error):
            entry.read_data(np.empty(3, np.int64))
            entry.end()

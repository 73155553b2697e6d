"""fastbp.datasets readers and datasets.load (what fastbp train --data reads): memory
that stays near the size of the arrays returned, numbers read strictly as C's strtod (and
FANN) would, CSV line numbers that count physical lines, and files that are not regular
files refused before they are opened."""
import os
import pathlib
import re
import resource
import subprocess
import sys
import textwrap
import threading
import tracemalloc

import numpy as np
import pytest

from fastbp import datasets
from fastbp.datasets import load_csv, load_fann

ROOT = pathlib.Path(__file__).resolve().parents[1]


# -- memory -------------------------------------------------------------------------------

def _short_rows(n, rng):
    """n rows of 5 small numbers each ("3.5,0.25,7,1.5,0"), about 16 bytes a row."""
    vocab = np.array(["0", "1", "2.5", "7", "0.25", "3.5", "9", "1.5", "4", "6.75"])
    cells = vocab[rng.integers(0, vocab.size, size=(n, 5))]
    return cells


@pytest.fixture(scope="module")
def big_files(tmp_path_factory):
    """A ~20 MB CSV and a ~20 MB FANN file of short rows (5 columns of small numbers)."""
    folder = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(0)
    n = 1_300_000
    cells = _short_rows(n, rng)
    csv_path = folder / "big.csv"
    with open(csv_path, "w") as f:
        f.write("a,b,c,d,y\n")
        for start in range(0, n, 100_000):
            part = cells[start:start + 100_000]
            f.write("\n".join(",".join(row) for row in part.tolist()) + "\n")
    fann_path = folder / "big.train"
    with open(fann_path, "w") as f:
        f.write(f"{n} 4 1\n")
        for start in range(0, n, 100_000):
            part = cells[start:start + 100_000].tolist()
            f.write("".join(" ".join(row[:4]) + "\n" + row[4] + "\n" for row in part))
    return csv_path, fann_path, cells.astype(np.float64)


def _peak(read, *args, **kwargs):
    """(what read returned, the peak of traced memory while it ran, in bytes)."""
    tracemalloc.start()
    try:
        out = read(*args, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return out, peak


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_csv_peak_memory_is_near_the_arrays_returned(big_files, dtype):
    path, _, values = big_files
    assert os.path.getsize(path) > 18e6
    (X, y), peak = _peak(load_csv, path, dtype=dtype)
    returned = X.nbytes + y.nbytes
    assert peak <= 3 * returned + 8e6, (peak / 1e6, returned / 1e6)
    assert X.dtype == y.dtype == np.dtype(dtype)
    expected = values.astype(dtype)
    np.testing.assert_array_equal(X, expected[:, :4])
    np.testing.assert_array_equal(y, expected[:, 4])


@pytest.mark.parametrize("quoted", [False, True])
def test_csv_class_names_are_kept_compactly(tmp_path, quoted):
    """Quoted names go through csv.reader row by row (the slow path), plain ones through
    NumPy a piece at a time: both keep each name once and a number per row."""
    rng = np.random.default_rng(1)
    n = 100_000 if quoted else 300_000
    cells = _short_rows(n, rng)
    names = np.array(["setosa", "versicolor", "virginica"])[rng.integers(0, 3, n)]
    quote = '"' if quoted else ""
    path = tmp_path / "names.csv"
    with open(path, "w") as f:
        f.write("a,b,c,d,species\n")
        f.write("".join(",".join(row[:4]) + f",{quote}{name}{quote}\n"
                        for row, name in zip(cells.tolist(), names.tolist())))
    (X, y), peak = _peak(load_csv, path)
    returned = X.nbytes + y.nbytes
    assert peak <= 3 * returned + 8e6, (peak / 1e6, returned / 1e6)
    np.testing.assert_array_equal(y, names)
    np.testing.assert_array_equal(X, cells[:, :4].astype(np.float64))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fann_peak_memory_is_near_the_arrays_returned(big_files, dtype):
    _, path, values = big_files
    assert os.path.getsize(path) > 18e6
    (X, Y), peak = _peak(load_fann, path, dtype=dtype)
    returned = X.nbytes + Y.nbytes
    assert peak <= 3 * returned + 8e6, (peak / 1e6, returned / 1e6)
    assert X.dtype == Y.dtype == np.dtype(dtype)
    expected = values.astype(dtype)
    np.testing.assert_array_equal(X, expected[:, :4])
    np.testing.assert_array_equal(Y, expected[:, 4:])


def test_fann_values_on_one_long_line_are_read_in_pieces(tmp_path):
    """Line breaks between values do not matter: a file with every value on one line
    (longer than the reader's pieces) reads the same."""
    rng = np.random.default_rng(2)
    values = rng.integers(0, 1000, size=(50_000, 3))
    path = tmp_path / "one.train"
    path.write_text("50000 2 1\n" + " ".join(map(str, values.ravel().tolist())) + "\n")
    X, Y = load_fann(path)
    np.testing.assert_array_equal(X, values[:, :2])
    np.testing.assert_array_equal(Y, values[:, 2:])


# -- numbers as strtod reads them -----------------------------------------------------------

BAD = ["1_000", "\u0661\u0662", "\uff11\uff12", "0x10", " 1 2 ", "\u00a01", "1,5", "--1",
       "1e", "e5", "."]


@pytest.mark.parametrize("token", BAD)
def test_csv_numbers_are_ascii_decimals_only(tmp_path, token):
    path = tmp_path / "n.csv"
    path.write_text(f"a,b,c\n1,2,3\n4,5,6\n7,\"{token}\",9\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 4: .* is not a number") as info:
        load_csv(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("token", [t for t in BAD if t not in (" 1 2 ", "1,5")])
def test_fann_numbers_are_ascii_decimals_only(tmp_path, token):
    path = tmp_path / "n.train"
    path.write_text(f"2 2 1\n1 2\n3\n4 {token}\n6\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 4: .* is not a number") as info:
        load_fann(path)
    assert str(path) in str(info.value)


def test_fann_two_numbers_where_one_belongs_name_the_line(tmp_path):
    path = tmp_path / "n.train"
    path.write_text("1 2 1\n5 6\n 1 2 \n")
    with pytest.raises(ValueError, match="line 3: more values") as info:
        load_fann(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("token", ["inf", "-Infinity", "NaN", "+nan", "1e999"])
def test_non_finite_numbers_are_refused_as_such(tmp_path, token):
    (tmp_path / "n.csv").write_text(f"1,2,3\n4,{token},6\n")
    with pytest.raises(ValueError, match=re.escape(f"line 2: '{token}' is not a finite")):
        load_csv(tmp_path / "n.csv")
    (tmp_path / "n.train").write_text(f"2 2 1\n1 2\n3\n4 {token}\n6\n")
    with pytest.raises(ValueError, match=re.escape(f"line 4: '{token}' is not a finite")):
        load_fann(tmp_path / "n.train")


def test_the_forms_strtod_reads_still_parse(tmp_path):
    good = ["-1.5e-3", "+2", ".5", "5.", "1E5", "007", "-0", "2.5e+2"]
    expected = [float(t) for t in good]
    (tmp_path / "g.csv").write_text(",".join(good) + ",1\n" + ", ".join(good) + " ,\t0\n")
    X, y = load_csv(tmp_path / "g.csv")
    np.testing.assert_array_equal(X, [expected, expected])
    np.testing.assert_array_equal(y, [1, 0])
    (tmp_path / "g.train").write_text("1 7 1\n" + "\t".join(good[:7]) + "\r\n2.5e+2\r\n")
    X, Y = load_fann(tmp_path / "g.train")
    np.testing.assert_array_equal(X, [expected[:7]])
    np.testing.assert_array_equal(Y, [[250.0]])


def test_fann_header_counts_are_ascii_integers(tmp_path):
    (tmp_path / "h.train").write_text("1_0 2 1\n" + "1 2\n3\n" * 10)
    with pytest.raises(ValueError, match="line 1: .*three positive integers"):
        load_fann(tmp_path / "h.train")


# -- physical line numbers ------------------------------------------------------------------

def test_csv_line_numbers_count_the_lines_of_quoted_fields(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('a,b,label\n1,2,"two\nlines"\n3,4,cat\n5,6,dog\n7,x,cat\n')
    with pytest.raises(ValueError, match="line 6: 'x' is not a number"):
        load_csv(path)
    path.write_text('a,b,label\n1,2,"two\nlines"\n3,4,cat\n5,6\n')
    with pytest.raises(ValueError, match="line 5: 2 fields where the header has 3"):
        load_csv(path)
    path.write_text('a,b,label\n1,2,"two\nlines"\n3,4,"cat"x\n')
    with pytest.raises(ValueError, match="line 4: .*expected after"):
        load_csv(path)
    path.write_text('a,b,label\r\n1,2,"two\r\nlines"\r\n\r\n3,4,cat\r\n5,6,dog\r\n7,x,cat\r\n')
    with pytest.raises(ValueError, match="line 7: 'x' is not a number"):
        load_csv(path)
    path.write_text('a,b,label\n1,2,"two\nlines"\n3,4,cat\n')
    _, y = load_csv(path)
    assert list(y) == ["two\nlines", "cat"]


def test_utf8_errors_name_the_byte_and_line(tmp_path):
    path = tmp_path / "u.csv"
    path.write_bytes(b"a,b\n1,2\n3,\xff\n")
    with pytest.raises(ValueError, match=r"not a UTF-8 text file \(byte 10 is b'\\xff', "
                                         r"on line 3\)"):
        load_csv(path)
    path.write_bytes(b"1 1 1\n1\n\xe2\x82")  # cut in the middle of a character
    with pytest.raises(ValueError, match="not a UTF-8 text file"):
        load_fann(path)
    path.write_bytes(b"1 1 1\n1\n2\n" + b" " * 300_000 + b"\0")  # NUL after a long text
    with pytest.raises(ValueError, match="not a text file"):
        load_fann(path)


def test_csv_keeps_non_ascii_names_and_a_byte_order_mark(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffx,espèce\n1,café\n2,thé\n".encode())
    X, y = load_csv(path, target="espèce")
    np.testing.assert_array_equal(X, [[1], [2]])
    assert list(y) == ["café", "thé"]


# -- files that are not regular files -------------------------------------------------------

def _within(seconds, call, *args):
    """call(*args) in a thread: its exception (or None), or a failure if it takes longer."""
    outcome = []

    def run():
        try:
            call(*args)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    return thread, outcome


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    yield path
    # Unblock a reader stuck in open(): a writer that opens and closes gives it EOF.
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


@pytest.mark.parametrize("reader", ["load_fann", "load_csv", "load", "sniff", "load_npz"])
def test_a_fifo_is_refused_before_it_is_opened(fifo, reader):
    call = getattr(datasets, reader)
    thread, outcome = _within(10, call, str(fifo))
    assert not thread.is_alive(), f"{reader} blocked opening a FIFO"
    assert isinstance(outcome[0], ValueError), outcome
    assert str(outcome[0]) == f"{fifo} is not a regular file (a FIFO)"


def _isolated(code, timeout=120):
    """Run code in a fresh interpreter, limited to 4 GiB of address space (a reader that
    reads /dev/zero to its end fails there, not here): (returncode, stdout, stderr)."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, preexec_fn=limit,
                          check=False)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_dev_zero_is_refused_at_once():
    code, out, err = _isolated("""
        import time
        from fastbp import datasets
        for read in (datasets.load_fann, datasets.load_csv, datasets.load):
            started = time.perf_counter()
            try:
                read("/dev/zero")
            except ValueError as exc:
                print(exc, time.perf_counter() - started < 5)
        """)
    assert code == 0, err[-2000:]
    assert out.splitlines() == ["/dev/zero is not a regular file (a character device) True"] * 3


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "symlink"])
def test_cli_refuses_a_non_regular_file_in_one_line(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
        what = "a FIFO"
    else:
        if not os.path.exists("/dev/zero"):
            pytest.skip("no /dev/zero")
        path = "/dev/zero"
        if kind == "symlink":  # followed: what it points to counts
            path = tmp_path / "data.csv"
            path.symlink_to("/dev/zero")
        what = "a character device"
    try:
        code, _, err = _isolated(f"""
            import sys
            from fastbp.cli import main
            sys.exit(main(["--data", {str(path)!r}, "--epochs", "1", "--quiet"]))
            """, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"fastbp train --data {path} did not return")
    finally:
        if kind == "fifo":
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
    assert code == 2, err[-2000:]
    assert err.strip().splitlines() == [
        f"fastbp: error: {path} is not a regular file ({what})"]

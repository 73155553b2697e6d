"""The documentation runs: the tutorial's code prints the numbers docs/tutorial.md shows,
its excerpts of the kernels are the kernels' source, its timing script still works, and
the MkDocs site (tutorial and API reference from the docstrings) builds without a warning.

Code blocks of a Markdown file say what the tests do with them in an HTML comment on the
line before the fence (invisible when rendered); ``markdown_blocks`` reads them, and
tests/test_readme.py applies the same rules to README.md:

    <!-- test: run -->                    run it (all blocks of a file in order, one
                                          namespace); a ```text block right after it is
                                          the output it must print
    <!-- test: needs onnx, onnxruntime --> run it where these modules import, else skip
                                          with that reason
    <!-- test: slow REASON -->            run only with FASTBP_DOCS_ALL=1 (too slow for
                                          CI's budget), else skip with the reason
    <!-- test: skip REASON -->            never run, for the reason given
    <!-- test: source PATH -->            an excerpt: its text must appear verbatim in PATH

A Python block without a marker fails the test: every example says whether it runs.
"""
import contextlib
import importlib.util
import io
import json
import os
import pathlib
import re
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial.md"
RUN_ALL = os.environ.get("FASTBP_DOCS_ALL") == "1"

_FENCE = re.compile(r"^```(\S*)\s*$")
_MARKER = re.compile(r"^<!-- test: (run|needs|slow|skip|source)\b\s*(.*?)\s*-->$")


@dataclass
class Block:
    """A fenced code block of a Markdown file."""

    lang: str         # the fence's info string: python, text, bash, ... ("" for none)
    text: str         # the code, with a final newline
    line: int         # line of the opening fence, from 1
    action: str = ""  # the marker's action (run, needs, slow, skip, source), or ""
    detail: str = ""  # what follows the action: modules, a reason, a path
    output: "Block | None" = None  # for a python block: the ```text block right after it
    end: int = 0      # line index of the closing fence, from 0

    def where(self, path):
        return f"{path.name}:{self.line}"


def markdown_blocks(path):
    """The fenced code blocks of the Markdown file at ``path``, in order, each with the
    ``<!-- test: ... -->`` marker on the line before its fence (blank lines between are
    allowed) and, for python blocks, the text block that follows (its expected output)."""
    lines = pathlib.Path(path).read_text().splitlines()
    blocks, marker, i = [], None, 0
    while i < len(lines):
        line = lines[i]
        found = _MARKER.match(line.strip())
        fence = _FENCE.match(line)
        if found:
            marker = found.groups()
        elif fence:
            start = i
            i += 1
            while i < len(lines) and lines[i].rstrip() != "```":
                i += 1
            text = "".join(t + "\n" for t in lines[start + 1:i])
            action, detail = marker or ("", "")
            block = Block(fence.group(1), text, start + 1, action, detail, end=i)
            previous = blocks[-1] if blocks else None
            if (block.lang == "text" and previous is not None and previous.lang == "python"
                    and previous.output is None and _only_blank(lines, previous.end, start)):
                previous.output = block
            blocks.append(block)
            marker = None
        elif line.strip():
            marker = None  # a marker belongs to the fence right after it
        i += 1
    return blocks


def _only_blank(lines, after, before):
    return not any(t.strip() for t in lines[after + 1:before])


def check_marked(path, blocks):
    """Every python block of the file carries a marker."""
    unmarked = [b.where(path) for b in blocks if b.lang == "python" and not b.action]
    assert not unmarked, (f"python blocks without a <!-- test: ... --> marker (run, needs, "
                          f"slow, skip or source): {unmarked}")


def runnable(block):
    """None where the block is to run here, else why not (for pytest's skip report)."""
    if block.action == "run":
        return None
    if block.action == "needs":
        missing = [m for m in re.split(r"[,\s]+", block.detail) if m
                   and importlib.util.find_spec(m) is None]
        return f"needs {', '.join(missing)}, not installed" if missing else None
    if block.action == "slow":
        return None if RUN_ALL else f"slow ({block.detail}); FASTBP_DOCS_ALL=1 runs it"
    return f"not run: {block.detail}"


def run_blocks(path, blocks, cwd):
    """Run the file's python blocks in order in one namespace, with ``cwd`` as the working
    directory, each block's printed output held against the text block after it. NumPy's
    print options are put back afterwards. Returns the reasons of the blocks not run."""
    namespace = {"__name__": "__docs__"}
    skipped = []
    options = np.get_printoptions()
    here = os.getcwd()
    os.chdir(cwd)
    try:
        for block in blocks:
            if block.lang != "python" or block.action == "source":
                continue
            why = runnable(block)
            if why is not None:
                skipped.append(f"{block.where(path)}: {why}")
                continue
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(block.text, f"{path}:{block.line}", "exec"), namespace)
            if block.output is not None:
                want = [t.rstrip() for t in block.output.text.rstrip().splitlines()]
                got = [t.rstrip() for t in out.getvalue().rstrip().splitlines()]
                assert got == want, (f"{block.where(path)} printed\n" + "\n".join(got)
                                     + "\nwhere the page shows\n" + "\n".join(want))
    finally:
        os.chdir(here)
        np.set_printoptions(**options)
    return skipped


# -- the tutorial -----------------------------------------------------------------------------

def test_tutorial_runs_and_prints_the_numbers_it_shows(tmp_path):
    blocks = markdown_blocks(TUTORIAL)
    check_marked(TUTORIAL, blocks)
    ran = [b for b in blocks if b.lang == "python" and runnable(b) is None
           and b.action != "source"]
    assert len(ran) >= 10 and sum(b.output is not None for b in ran) >= 10
    skipped = run_blocks(TUTORIAL, blocks, tmp_path)
    # Only the timing is left out: it is machine-dependent (test_timing_script_* below).
    assert len(skipped) == 1 and "timing" in skipped[0], skipped


def test_tutorial_excerpts_are_the_kernels_source():
    excerpts = [b for b in markdown_blocks(TUTORIAL) if b.action == "source"]
    assert len(excerpts) == 3
    for block in excerpts:
        source = (ROOT / block.detail).read_text()
        assert block.text in source, (f"{block.where(TUTORIAL)}: the excerpt is no longer "
                                      f"in {block.detail}; copy the current code")


def test_marker_parsing():
    """The rules above, on a small page: markers bind to the next fence only, outputs to
    the python block right before them."""
    page = ("<!-- test: run -->\n```python\nprint(1)\n```\n\n```text\n1\n```\n"
            "<!-- test: skip no reason -->\n\nSome prose.\n```python\nx = 1\n```\n"
            "<!-- test: needs no_such_module_here -->\n```python\nimport no_such_module_here\n```\n")
    path = TUTORIAL.parent / "does-not-exist.md"
    blocks = _parse_text(page, path)
    assert [(b.lang, b.action) for b in blocks] == [("python", "run"), ("text", ""),
                                                    ("python", ""), ("python", "needs")]
    assert blocks[0].output is blocks[1]
    assert runnable(blocks[3]) == "needs no_such_module_here, not installed"
    with pytest.raises(AssertionError, match="without a <!-- test"):
        check_marked(path, blocks)


def _parse_text(text, path):
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        file = pathlib.Path(folder) / path.name
        file.write_text(text)
        return markdown_blocks(file)


# -- the tutorial's timing ---------------------------------------------------------------------

def _timing_script():
    spec = importlib.util.spec_from_file_location("loop_vs_vectorized",
                                                  ROOT / "docs" / "loop_vs_vectorized.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_timing_script_tabulates_and_draws_the_saved_measurements(tmp_path):
    pytest.importorskip("matplotlib")
    script = _timing_script()
    data = script.load()
    assert {r["net"] for r in data["rows"]} == set(script.NETS)
    table = script.table(data)
    assert table.count("\n| ") == len(data["rows"])  # the rows below the header
    assert "python docs/loop_vs_vectorized.py" in table
    script.draw(data, tmp_path / "figure.png")
    assert (tmp_path / "figure.png").stat().st_size > 1000


def test_timing_script_measures():
    """One cheap row of the measurement the script makes (the full one takes a minute):
    batches of 16 on 64-32-10, kernels that tests/test_bench.py has compiled already."""
    import numba
    threads = numba.get_num_threads()
    try:
        data = _timing_script().measure(nets=["64-32-10"], schedules=["16"], repeat=1,
                                        out=lambda line: None)
    finally:
        numba.set_num_threads(threads)
    (row,) = data["rows"]
    assert row["rates"]["loop"] > 0 and row["rates"]["vectorized"] > 0
    json.dumps(data)  # what the script writes


# -- the site ----------------------------------------------------------------------------------

def test_docs_build_without_warnings(tmp_path):
    """``mkdocs build --strict`` (a warning fails it): the tutorial, the API reference that
    mkdocstrings builds from the docstrings, the figure drawn by docs/hooks.py."""
    for module in ("mkdocs", "mkdocstrings_handlers", "matplotlib", "sklearn"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install '.[docs]')")
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                           "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
                          capture_output=True, text=True, cwd=ROOT)
    log = done.stdout + done.stderr
    assert done.returncode == 0 and "WARNING" not in log, log
    tutorial = (site / "tutorial" / "index.html").read_text()
    assert "loop_vs_vectorized.png" in tutorial and "loop / vectorized" in tutorial
    assert (site / "loop_vs_vectorized.png").stat().st_size > 1000
    api = (site / "api" / "index.html").read_text()
    for name in ("Network", "Network.forward", "Trainer", "Trainer.fit", "History", "Sweep",
                 "SweepResult", "grid.Grid", "grid.parse_grid", "schedules.ReduceOnPlateau",
                 "preprocessing.InputScaling", "datasets.load_fann", "datasets.prepare",
                 "estimators.MLPClassifier", "estimators.MLPRegressor.partial_fit"):
        assert f'id="fastbp.{name}"' in api, name
    # The estimators' docstrings are made at run time (docs/griffe_runtime.py reads them),
    # and Sphinx roles are shown as code (docs/hooks.py).
    assert "Multilayer perceptron classifier trained by fastbp" in api
    assert "class_weight" in api and ":class:<code>" not in api and ":meth:<code>" not in api

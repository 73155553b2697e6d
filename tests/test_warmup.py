"""fastbp warmup: each of its cases compiles what its title says.

The compiling itself is not repeated here (minutes; every kernel is compiled by the rest of
the suite): the fits, sweeps and passes are recorded instead of run, with the dtype of the
network and of the data each one gets, which is where a case built in a loop and run after
it goes wrong.
"""
import numpy as np
import pytest

import fastbp
from fastbp import cli, warmup


@pytest.fixture
def calls(monkeypatch):
    seen = []

    def fit(self, X, y, *args, **kwargs):
        seen.append(("fit", self.net.dtype, np.asarray(X).dtype, kwargs.get("callback")))

    def sweep_fit(self, X, y, *args, **kwargs):
        seen.append(("sweep", np.dtype(self.fixed.get("dtype", "float32")),
                     np.asarray(X).dtype, self.fixed.get("schedule")))

    def forward(self, X, *args, **kwargs):
        seen.append(("forward", self.dtype, np.asarray(X).dtype, None))

    monkeypatch.setattr(fastbp.Trainer, "fit", fit)
    monkeypatch.setattr(fastbp.Sweep, "fit", sweep_fit)
    def step(self, X, Y, *args, **kwargs):
        seen.append(("step", self.net.dtype, np.asarray(X).dtype, None))

    monkeypatch.setattr(fastbp.Network, "forward", forward)
    monkeypatch.setattr(fastbp.Trainer, "step", step)
    monkeypatch.setattr(fastbp.Network, "loss", lambda self, *a, **k: None)
    monkeypatch.setattr(fastbp.Network, "gradients", lambda self, *a, **k: None)
    return seen


def test_every_case_runs_in_the_dtype_its_title_names(calls):
    for title, case in warmup._cases():
        calls.clear()
        case()
        assert len(calls) == 1, title
        what, net_dtype, data_dtype, detail = calls[0]
        dtype = title.split()[0]
        assert net_dtype == dtype and data_dtype == dtype, (title, calls[0])
        assert what in title
        if what == "fit":
            assert (detail is not None) == ("epoch by epoch" in title), title
        if what == "sweep":
            assert f"({detail})" in title, title


def test_the_cases_cover_both_dtypes_every_schedule_and_optimizer():
    titles = [title for title, _ in warmup._cases()]
    for dtype in ("float32", "float64"):
        mine = [t for t in titles if t.startswith(dtype)]
        for word in ("online", "minibatch", "fullbatch", "adam", "rprop", "momentum",
                     "threads and packed products", "epoch by epoch", "sweep (online)",
                     "sweep (minibatch)", "forward"):
            assert any(word in t for t in mine), (dtype, word)


def test_the_command_reports_each_case_and_the_total(monkeypatch, capsys):
    monkeypatch.setattr(warmup, "_cases", lambda: [("float32 one", lambda: None),
                                                   ("float64 two", lambda: None)])
    assert cli.main(["warmup"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[1/2] float32 one: ") and out[1].startswith("[2/2] float64 two: ")
    assert out[2].startswith("compiled every kernel in ")

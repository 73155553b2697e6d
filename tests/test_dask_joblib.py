"""The scikit-learn estimators on a Dask cluster through joblib: a GridSearchCV whose fits
run in worker processes under ``joblib.parallel_backend("dask")`` (issue 10's second
route to a cluster; fastbp.Sweep's ``client=`` is the first). Skipped without
``dask[distributed]`` (``pip install ".[dask]"``; the ``test`` extra has it)."""
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
distributed = pytest.importorskip("distributed")

import joblib  # noqa: E402  (scikit-learn's dependency)
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

from fastbp.datasets import load_digits  # noqa: E402
from fastbp.estimators import MLPClassifier, MLPRegressor  # noqa: E402


def _search(estimator, **kwargs):
    grid = {"alpha": [1e-4, 1e-2], "schedule": ["minibatch", "fullbatch"]}
    return GridSearchCV(estimator, grid, cv=2, **kwargs)


def test_grid_search_runs_on_a_dask_cluster():
    X, y = load_digits()
    X, y = X[:300], y[:300]
    # threads=1: one Numba thread per fit, as the cluster has one thread per worker.
    clf = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=30,
                        random_state=0, threads=1)
    reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0, threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # In this process first: the reference, and the kernels compiled into Numba's
        # on-disk cache, which the workers (started with this environment) load.
        local = _search(clf).fit(X, y)
        local_reg = _search(reg).fit(X, X[:, 20])
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client, \
            distributed.get_task_stream(client) as tasks:
        with joblib.parallel_backend("dask"), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            remote = _search(clf, n_jobs=-1).fit(X, y)
            remote_reg = _search(reg, n_jobs=-1).fit(X, X[:, 20])
    workers = {t["worker"] for t in tasks.data}  # (recorded when its block ends)
    assert len(workers) == 2, workers  # the fits ran on both worker processes
    # The same fits, the same seeds: the same scores, wherever they ran.
    for name in ("mean_test_score", "split0_test_score", "split1_test_score"):
        np.testing.assert_array_equal(remote.cv_results_[name], local.cv_results_[name])
        np.testing.assert_array_equal(remote_reg.cv_results_[name],
                                      local_reg.cv_results_[name])
    assert remote.best_params_ == local.best_params_ and remote.best_score_ > 0.8
    np.testing.assert_array_equal(remote.best_estimator_.network_.params,
                                  local.best_estimator_.network_.params)

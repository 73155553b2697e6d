"""A Sweep on a dask.distributed cluster: chunks of models as tasks, their results put back
as they come, and every way a cluster fails named within a bounded time."""
import time

# A cluster with no workers for this long fails the sweep (tasks would wait forever); the
# futures are polled this often (also for Ctrl-C).
WORKERS_LOST_S = 30.0
POLL_S = 0.5


def _worker_version():
    """Run on each worker before any task: sent by reference to this module, so a worker
    without fastbp fails to even unpickle it, as it would fail every task."""
    from fastbp import __version__
    return __version__


def _reason(error):
    """What a worker's error says (distributed wraps it as Exception('Kind("text")'))."""
    text = str(error.args[0]) if getattr(error, "args", None) else repr(error)
    return text.replace('"', "").replace("\\'", "'")


def check_cluster(client):
    """RuntimeError unless the client is open and every worker runs this fastbp."""
    status = getattr(client, "status", "running")
    if status != "running":
        raise RuntimeError(f"Sweep.fit: the Dask client is {status}; pass an open "
                           "dask.distributed.Client")
    if not client.nthreads():
        raise RuntimeError("Sweep.fit: the Dask cluster has no workers")
    from fastbp import __version__
    found = client.run(_worker_version, on_error="return")
    missing = {w: v for w, v in found.items() if v != __version__}
    if missing:
        shown = ", ".join(f"{w} ({'fastbp ' + v if isinstance(v, str) else _reason(v)})"
                          for w, v in list(missing.items())[:3])
        raise RuntimeError(f"Sweep.fit: {len(missing)} of the cluster's {len(found)} workers "
                           f"cannot run fastbp {__version__}: {shown}; install this fastbp "
                           "on every worker")


def run(client, task, sweep, order, args, chunk_size, out, check):
    """``task(sweep, indices, args)`` on the cluster for chunks of the model indices in
    ``order`` (models of one structure next to each other, so that they share chunks), the
    {index: result} of each put into ``out`` as it comes back. Fails (RuntimeError) on a
    closed client, workers that cannot run this fastbp, a task's error, or a cluster that
    has had no workers for WORKERS_LOST_S; ``check`` (Ctrl-C) is polled while waiting,
    and cancels the rest."""
    import distributed
    check_cluster(client)
    n_models = len(order)
    if chunk_size is None:
        workers = max(1, sum(client.nthreads().values()))
        chunk_size = -(-n_models // workers)
    chunks = [order[i:i + chunk_size] for i in range(0, n_models, chunk_size)]
    futures = client.map(task, [sweep] * len(chunks), chunks, [args] * len(chunks),
                         pure=False)
    pending, lost_since = set(futures), None
    try:
        while pending:
            try:
                done, pending = distributed.wait(pending, timeout=POLL_S,
                                                 return_when="FIRST_COMPLETED")
            except (TimeoutError, distributed.TimeoutError):
                done = set()
            for future in done:
                if future.status != "finished":
                    error = future.exception() if future.status == "error" else None
                    raise RuntimeError(f"Sweep.fit: a task on the Dask cluster failed "
                                       f"({future.status}): {error!r}") from error
                out.update(future.result())
            if client.nthreads():
                lost_since = None
            elif lost_since is None:
                lost_since = time.monotonic()
            elif time.monotonic() - lost_since > WORKERS_LOST_S:
                raise RuntimeError(f"Sweep.fit: the Dask cluster has had no workers for "
                                   f"{WORKERS_LOST_S:.0f} s (lost all workers); "
                                   f"{len(pending)} of {len(futures)} tasks never finished")
            check()
    finally:
        if pending:
            client.cancel(list(pending))

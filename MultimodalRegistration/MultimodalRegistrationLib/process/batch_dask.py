"""A cohort's cases on a Dask cluster (``mmreg batch --dask``): the address checked before anything is written,
then each case run by ``execute`` (:func:`.batch.execute_case`) in a Dask worker, which keeps its own warm worker
and ends it with ``stop`` (:func:`.batch.stop_workers`)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable

from ..core.errors import InputError
from .jobs import CaseJob
from .manifest import CaseRecord


def check_dask(address: str) -> int | None:
    """Refuse a ``--dask`` value that cannot run, before anything is written; returns N of ``local:N`` (None
    for a scheduler's address, which must answer)."""
    count = None
    if address.startswith("local:"):
        given = address.split(":", 1)[1].strip() or "2"
        if not (given.isdigit() and int(given) >= 1):
            raise InputError(f"--dask {address}: local:N needs a whole number of workers N of 1 or more, e.g. local:2")
        count = int(given)
    elif address.rpartition("://")[0] not in ("ucx", "inproc"):  # not TCP: Dask itself says whether it connects
        host, _, port = address.rpartition("://")[2].rpartition(":")
        if not (host and port.isdigit()):
            raise InputError(f"--dask {address}: give a scheduler's address, tcp://HOST:PORT (e.g. tcp://node1:8786), "
                             "or local:N")  # fmt: skip
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
        except OSError as error:
            raise InputError(f"--dask {address}: cannot reach the scheduler ({error.strerror or error}): start it "
                             "(dask scheduler) or check the address") from None  # fmt: skip
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise InputError("--dask needs the distributed package: pip install distributed") from None
    return count


def _dask_client(address: str):
    from distributed import Client, LocalCluster

    count = check_dask(address)
    if count is not None:
        cluster = LocalCluster(n_workers=count, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster), cluster
    return Client(address), None


def run_dask(
    jobs: list[tuple[CaseJob, str]], address: str, timeout_s, python, on_case, execute: Callable, stop: Callable
) -> None:
    from distributed import as_completed as dask_completed

    client, cluster = _dask_client(address)
    try:
        futures = [client.submit(execute, job.to_json(), digest, timeout_s, python,
                                 key=f"mmreg-{job.case}-{uuid.uuid4().hex[:8]}", pure=False)
                   for job, digest in jobs]  # fmt: skip
        for future in dask_completed(futures):
            on_case(CaseRecord.from_dict(future.result()))
        client.run(stop)  # each Dask worker stops the warm worker it kept
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

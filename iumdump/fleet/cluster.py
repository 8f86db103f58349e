"""The Dask cluster a fleet run uses: a local one it starts and stops, or one already running.

Local (no ``--scheduler``): a :class:`distributed.LocalCluster` on the loopback interface, one
worker process per core (``--workers``), each with one thread, under a nanny that restarts it
should it die. The settings below are what the analysis needs from Dask, each for a reason:

- ``distributed.worker.daemon: False`` — the engine hashes the dump in a child process beside the
  analysis, and a daemonic process may not have children;
- ``distributed.scheduler.allowed-failures: 1`` — a task whose worker is lost (killed for its
  memory, crashed, or ended by ``--timeout``) is run once more, then recorded as failed;
- ``distributed.scheduler.worker-saturation: 1.0`` — a one-thread worker holds exactly the task it
  runs, so a worker that is lost takes no queued, innocent dump down with it;
- no spilling (``memory.target``/``spill`` off): results are a few hundred KB of report, and
  there is nothing for Dask to move to disk; the worker memory limit is a ceiling against a
  runaway analysis, well above what one dump needs (see :func:`memory_limit`).

External (``--scheduler tcp://host:8786``): the cluster's own settings apply; fleet reads them,
checks every worker can import iumdump, and says what differs from the local defaults.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidInputError

# An analysis holds one Volatility context. Measured by bench/bench_fleet.py on 16 dumps of up to
# 2 GiB, some with the real 1607 and 2004 kernels' tables: one `iumdump analyze` peaks at 181 MiB,
# a fleet worker at 205 MiB and settles back to 70-110 MiB after each dump. The limit is where
# Dask pauses (85 %) and then restarts (95 %) a worker, so it sits an order of magnitude above.
MIN_WORKER_MEMORY = 2 << 30
WORKER_PRELOAD = "iumdump.fleet.worker"  # workers leave Ctrl-C to the client
CONNECT_TIMEOUT = 10        # seconds to reach an external scheduler (it retries meanwhile)
WORKER_WAIT_TIMEOUT = 120   # seconds to wait for its first workers

LOCAL_CONFIG: dict[str, Any] = {
    "distributed.worker.daemon": False,
    "distributed.scheduler.allowed-failures": 1,
    "distributed.scheduler.worker-saturation": 1.0,
    "distributed.worker.memory.target": False,
    "distributed.worker.memory.spill": False,
    "distributed.worker.memory.pause": 0.85,
    "distributed.worker.memory.terminate": 0.95,
}


@dataclass
class Cluster:
    """A connected client and what the run report says about the cluster."""

    client: Any
    scheduler: str                   # "local" or the address given
    address: str                     # the scheduler's address
    workers: int
    threads: dict[str, int] = field(default_factory=dict)   # worker → threads
    memory_limit: int | None = None  # per worker, bytes (the smallest, on an external cluster)
    allowed_failures: int | None = None
    dashboard: str | None = None
    warnings: list[str] = field(default_factory=list)
    _local: Any = None

    def describe(self) -> dict[str, Any]:
        return {"scheduler": self.scheduler, "address": self.address, "workers": self.workers,
                "threads_per_worker": max(self.threads.values(), default=None),
                "memory_limit": self.memory_limit, "allowed_failures": self.allowed_failures,
                "dashboard": self.dashboard}

    def close(self) -> None:
        """Disconnect; stop the local cluster (its worker processes end with it)."""
        try:
            self.client.close()
        finally:
            if self._local is not None:
                self._local.close()


def default_workers() -> int:
    from dask.system import CPU_COUNT  # cores this process may use (affinity, cgroup quota)

    return max(1, CPU_COUNT)


def memory_limit(workers: int) -> int:
    """Per-worker limit: this machine's memory shared among the workers, never below
    :data:`MIN_WORKER_MEMORY` (a limit is a ceiling, not a reservation)."""
    from distributed.system import MEMORY_LIMIT  # cgroup-aware total

    return max(MEMORY_LIMIT // max(workers, 1), MIN_WORKER_MEMORY)


def dashboard_available() -> bool:
    """Dask serves its dashboard only with bokeh installed (not a dependency of iumdump)."""
    return importlib.util.find_spec("bokeh") is not None


def start_local(workers: int | None = None, limit: int | None = None) -> Cluster:
    """A local cluster of ``workers`` one-thread processes on 127.0.0.1. Call inside
    ``dask.config.set(LOCAL_CONFIG)`` kept for the whole run: the nanny reads it again whenever
    it restarts a worker."""
    from distributed import Client, LocalCluster

    workers = workers or default_workers()
    limit = limit or memory_limit(workers)
    # Loopback and a free port always: with no address, Dask serves its HTTP routes on :8787 on
    # every interface (and warns when another cluster holds that port).
    dashboard = "127.0.0.1:0"
    try:
        local = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                             memory_limit=limit, host="127.0.0.1", scheduler_port=0,
                             dashboard_address=dashboard, silence_logs=logging.CRITICAL,
                             preload=[WORKER_PRELOAD])
    except Exception as exc:  # ports, processes, a broken environment: one line, not a trace
        raise InvalidInputError(f"cannot start a local Dask cluster: {_reason(exc)}") from None
    client = Client(local)
    link = local.dashboard_link if dashboard_available() else None
    return Cluster(client=client, scheduler="local", address=local.scheduler_address,
                   workers=workers, threads=dict.fromkeys(range(workers), 1),
                   memory_limit=limit, allowed_failures=LOCAL_CONFIG[
                       "distributed.scheduler.allowed-failures"],
                   dashboard=link, _local=local)


def connect(address: str, workers: int | None = None) -> Cluster:
    """A client of the scheduler at ``address``, once ``workers`` (default 1) are connected."""
    from distributed import Client

    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except Exception as exc:  # refused, timed out, a malformed address, another protocol
        raise InvalidInputError(f"cannot reach the Dask scheduler: {_reason(exc)}",
                                path=address) from None
    try:
        needed = workers or 1
        try:
            client.wait_for_workers(needed, timeout=WORKER_WAIT_TIMEOUT)
        except (TimeoutError, OSError) as exc:
            raise InvalidInputError(
                f"fewer than {needed} worker(s) connected within {WORKER_WAIT_TIMEOUT} s "
                f"({_reason(exc)}); start them with: dask worker {address} --nthreads 1",
                path=address) from None
        cluster = _inspect(client, address)
    except BaseException:
        client.close()
        raise
    return cluster


def _inspect(client, address: str) -> Cluster:
    info = client.scheduler_info(n_workers=-1)
    workers = info.get("workers", {})
    threads = {addr: int(w.get("nthreads", 1)) for addr, w in workers.items()}
    limits = [int(w["memory_limit"]) for w in workers.values() if w.get("memory_limit")]
    try:
        versions = client.run(_worker_iumdump_version)
    except (ImportError, ModuleNotFoundError) as exc:
        raise InvalidInputError(f"a worker cannot import iumdump ({exc}); install iumdump in the "
                                "workers' Python environment", path=address) from None
    from .. import __version__

    warnings: list[str] = []
    mismatched = sorted(addr for addr, version in versions.items() if version != __version__)
    if mismatched:
        raise InvalidInputError(f"worker(s) {', '.join(mismatched)} run iumdump "
                                f"{versions[mismatched[0]]}, this client {__version__}; install "
                                "the same version everywhere", path=address)
    busy = sorted(addr for addr, n in threads.items() if n > 1)
    if busy:
        warnings.append(f"{len(busy)} worker(s) have more than one thread; each runs one "
                        "analysis at a time (Volatility's settings are per process): start "
                        "workers with --nthreads 1")
    try:
        allowed = client.run_on_scheduler(_scheduler_allowed_failures)
    except Exception:  # a scheduler that refuses to run code: its setting stays unknown
        allowed = None
    if allowed is not None and allowed != LOCAL_CONFIG["distributed.scheduler.allowed-failures"]:
        warnings.append(f"the scheduler retries a task whose worker is lost {allowed} time(s) "
                        "(distributed.scheduler.allowed-failures; fleet's local cluster uses 1)")
    return Cluster(client=client, scheduler=address, address=info.get("address", address),
                   workers=len(workers), threads=threads,
                   memory_limit=min(limits) if limits else None, allowed_failures=allowed,
                   warnings=warnings)  # its dashboard, if any, is the cluster owner's to give


def _worker_iumdump_version() -> str:
    from iumdump import __version__

    return __version__


def _scheduler_allowed_failures(dask_scheduler=None) -> int | None:
    return getattr(dask_scheduler, "allowed_failures", None)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


"""What a Dask worker runs for one dump: the analysis of ``iumdump analyze``, nothing else.

:func:`run_dump` is the one task of a fleet run. It calls the engine exactly as the CLI does —
:func:`iumdump.analysis.engine.analyze_dump`, which brings its own Volatility settings,
preflight, hashing and checks — and returns the :class:`~iumdump.report.model.Report` to the
client, which writes the files: a worker never needs to see the output directory, and a report
is never half written by a worker that dies. The dump itself is opened by the worker where it
lies; only its path travels through the scheduler.

Failures stay with their dump: bad input (an :class:`iumdump.errors.Error`) and any other
exception become a one-line error in the outcome, and the worker goes on with the next dump.

Three things make a long-lived worker process safe for analysis after analysis:

- one analysis at a time per process (:data:`_ANALYSIS_LOCK`): Volatility's symbol path and
  offline switch are process-wide settings that ``analyze`` sets and restores, so two threads of
  one worker must never analyse at once (a worker started with more threads just queues);
- :func:`iumdump.analysis.volatility_env.release_volatility_caches` after each dump, so that what
  Volatility's caches keep of one dump's context does not pile up from dump to dump;
- ``--timeout``: Python cannot stop a thread that is deep in Volatility, so a task that runs past
  its deadline ends its worker process, after counting the timeout in the scheduler's metadata
  (:func:`timeout_key`) so that the client can say why. The worker's nanny starts a fresh
  process and the scheduler, seeing the worker lost, runs the task again — or records it as
  failed once it has lost ``distributed.scheduler.allowed-failures`` workers (1 on the cluster
  fleet starts).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Iterator

from ..errors import Error
from ..report import DEFAULT_FORMATS
from ..visible import one_line

ANALYSED = "analysed"
RESUMED = "resumed"
FAILED = "failed"

TIMEOUT_METADATA = "iumdump-fleet"  # the scheduler's metadata: run → dump → timeouts
TIMEOUT_EXIT_CODE = 124  # what timeout(1) exits with
_RECORD_SECONDS = 10     # at most, to record a timeout on the scheduler before the process ends

_ANALYSIS_LOCK = threading.Lock()
_tqdm_lock_set = False


@dataclass(frozen=True)
class DumpJob:
    """What a worker needs to analyse one dump: a path it can open, and analyze's options.
    ``expected_sha256`` (``--resume``): the digest an earlier report recorded; when the file still
    has it, the dump is not analysed again."""

    path: str
    report_id: str
    symbol_dirs: tuple[str, ...] = ()
    offline: bool = False
    formats: tuple[str, ...] = DEFAULT_FORMATS
    timeout: float | None = None
    expected_sha256: str | None = None
    run_token: str | None = None  # names this run's timeout records on the scheduler


@dataclass
class DumpOutcome:
    """What came of one dump. ``report`` is set when ``status`` is ``analysed``; ``error`` is one
    line when it is ``failed``. ``seconds`` is the task's own wall time; ``worker_rss`` and
    ``worker_peak_rss`` are the worker process's resident memory after the task (caches released)
    and its peak so far, in bytes."""

    path: str
    status: str
    report: object = None
    error: str | None = None
    note: str | None = None
    seconds: float | None = None
    worker: str | None = None
    host: str | None = None
    worker_rss: int | None = None
    worker_peak_rss: int | None = None


def run_dump(job: DumpJob) -> DumpOutcome:
    """The fleet task: analyse ``job.path`` as ``iumdump analyze`` would, or confirm an earlier
    report still describes it. Never raises for a bad dump."""
    from ..analysis.volatility_env import release_volatility_caches

    with _ANALYSIS_LOCK:
        _thread_lock_for_tqdm()
        started = time.monotonic()
        outcome = DumpOutcome(path=job.path, status=FAILED)
        with _deadline(job):
            try:
                if job.expected_sha256 and _unchanged(job):
                    outcome.status = RESUMED
                else:
                    if job.expected_sha256:
                        outcome.note = ("the dump no longer has the sha256 of its earlier "
                                        "report; analysed again")
                    outcome.report = _analyze(job)
                    outcome.status = ANALYSED
            except Error as err:
                outcome.error = one_line(err)
            except Exception as exc:  # a bug or a Volatility failure: this dump only
                outcome.error = one_line(f"{job.path}: internal error: "
                                         f"{type(exc).__name__}: {exc}")
            finally:
                release_volatility_caches()
        outcome.seconds = round(time.monotonic() - started, 3)
    worker = _current_worker()
    outcome.worker = worker.address if worker is not None else None
    outcome.host = socket.gethostname()
    outcome.worker_rss, outcome.worker_peak_rss = _memory()
    return outcome


def _thread_lock_for_tqdm() -> None:
    """The engine's progress bars are off in a worker, but tqdm still creates its lock, by default
    a multiprocessing RLock — a named semaphore that a worker ended by --timeout would leave to
    the resource tracker (which then warns on the analyst's terminal). A thread lock serves."""
    global _tqdm_lock_set
    if not _tqdm_lock_set:
        from tqdm import tqdm

        tqdm.set_lock(threading.RLock())
        _tqdm_lock_set = True


def _analyze(job: DumpJob):
    """The one call into the engine: the same function, options and report as the CLI's."""
    from ..analysis.engine import analyze_dump

    return analyze_dump(job.path, symbol_dirs=list(job.symbol_dirs), offline=job.offline,
                   quiet=True, formats=tuple(job.formats))


def _unchanged(job: DumpJob) -> bool:
    """Whether the file still hashes to the digest its earlier report recorded (the engine's
    preflight and hasher, so a file that became unreadable is analysed — and refused — anew)."""
    from ..analysis.hasher import Hasher
    from ..analysis.preflight import inspect_dump

    try:
        return Hasher(inspect_dump(job.path)).result(quiet=True) == job.expected_sha256
    except Error:
        return False


def _current_worker():
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):  # not inside a Dask worker
        return None


def _memory() -> tuple[int | None, int | None]:
    try:
        import psutil

        rss = psutil.Process().memory_info().rss
    except (ImportError, OSError):
        rss = None
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = peak if sys.platform == "darwin" else peak * 1024  # macOS bytes, Linux KiB
    except ImportError:  # Windows
        peak = rss
    return rss, peak


@contextlib.contextmanager
def _deadline(job: DumpJob) -> Iterator[None]:
    """Arm the ``--timeout`` of ``job`` — only inside a Dask worker, whose nanny restarts it."""
    worker = _current_worker()
    if not job.timeout or worker is None:
        yield
        return
    timer = threading.Timer(job.timeout, _expire, args=(worker, job))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def timeout_key(run_token: str, report_id: str) -> list[str]:
    """Where the scheduler's metadata counts the timeouts of one dump of one run."""
    return [TIMEOUT_METADATA, run_token, report_id]


async def _count_timeout(worker, job: DumpJob) -> None:
    key = timeout_key(job.run_token or "", job.report_id)
    count = await worker.scheduler.get_metadata(keys=key, default=0)
    await worker.scheduler.set_metadata(keys=key, value=count + 1)


def _expire(worker, job: DumpJob) -> None:
    """The analysis ran past its deadline: count it on the scheduler (a request answered before
    the process ends, so the client can say why the task failed), stop the hashing child, end
    the worker process. Nothing is lost: the client writes reports, and holds every result."""
    try:
        from distributed.utils import sync

        sync(worker.loop, _count_timeout, worker, job, callback_timeout=_RECORD_SECONDS)
    except Exception:  # the record is a courtesy; the process ends regardless
        pass
    for child in multiprocessing.active_children():
        child.terminate()
    os._exit(TIMEOUT_EXIT_CODE)

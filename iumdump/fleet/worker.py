"""Preloaded into each worker process of the local cluster (Dask's ``preload``): runs at every
start, restarts after a ``--timeout`` included.

Ctrl-C in a terminal reaches the whole foreground process group — the client and every worker
process the local cluster spawned. The client stops the run (cancels the tasks, closes the
cluster, writes the fleet report); a worker that took the signal too would die on its own, in
the middle of its task, with a traceback on the analyst's terminal. So workers ignore it, and
so do the hashing children they start (an ignored signal stays ignored across fork and exec).
"""

from __future__ import annotations

import signal
import threading


def dask_setup(worker) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)

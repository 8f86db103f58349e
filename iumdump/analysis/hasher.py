"""The evidence's sha256, computed beside the analysis (the child runs :mod:`iumdump.hashing`)."""

from __future__ import annotations

import multiprocessing
import threading

from .. import hashing
from ..errors import InvalidInputError
from .preflight import DumpFile
from .progress import phase_bar


class _Shared:
    """The thread hasher's counter and stop flag: the ``.value`` of a shared ``RawValue``."""

    value = 0


class Hasher:
    """sha256 of a file, computed in a child process while the analysis runs.

    The hash is one sequential chain that no core can split; in a child process it runs on the
    second core without competing for the GIL (see :mod:`iumdump.hashing`). :meth:`result` waits
    for it, showing a progress bar for whatever is left.

    A daemonic process may not start children (``multiprocessing`` refuses): there — a Dask
    worker started with its default ``distributed.worker.daemon``, say — the same function runs
    in a thread instead, slower beside the analysis but the same digest."""

    def __init__(self, dump: DumpFile) -> None:
        self.dump = dump
        args = (str(dump.path),)
        if multiprocessing.current_process().daemon:
            self._done, self._stop = _Shared(), _Shared()
            self._receiver, sender = multiprocessing.Pipe(duplex=False)
            self._process = threading.Thread(target=hashing.hash_file, name="iumdump-sha256",
                                             args=args + (self._done, self._stop, sender),
                                             daemon=True)
            self._process.start()  # the thread closes its end of the pipe when done
            return
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._done = context.RawValue("Q", 0)
        self._stop = context.RawValue("B", 0)
        self._receiver, sender = context.Pipe(duplex=False)
        self._process = context.Process(target=hashing.hash_file, name="iumdump-sha256",
                                        args=args + (self._done, self._stop, sender),
                                        daemon=True)
        self._process.start()
        sender.close()

    @property
    def done(self) -> int:
        return self._done.value

    def cancel(self) -> None:
        self._stop.value = 1
        self._process.join()

    def result(self, quiet: bool = False) -> str:
        # Start the bar where the child already is, so the rate shown is real.
        with phase_bar("Hashing dump (sha256)", quiet, total=self.dump.size, initial=self.done,
                       unit="B", unit_scale=True, unit_divisor=1024) as bar:
            while self._process.is_alive() and not self._receiver.poll(0.1):
                bar.update(self.done - bar.n)
            bar.update(self.done - bar.n)
        try:
            outcome, value = self._receiver.recv()
        except EOFError:
            raise InvalidInputError(f"hashing process ended without a result (exit code "
                                    f"{getattr(self._process, 'exitcode', None)})",
                                    path=self.dump.given) from None
        finally:
            self._process.join()
        if outcome == "oserror":
            raise InvalidInputError(f"cannot read: {value}", path=self.dump.given)
        if outcome != "ok":
            raise InvalidInputError("hashing was cancelled", path=self.dump.given)
        if self.done != self.dump.size:
            raise InvalidInputError(f"changed size while being hashed ({self.dump.size:,} bytes "
                                    f"before, {self.done:,} read)", path=self.dump.given)
        return value

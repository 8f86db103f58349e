"""sha256 of the evidence in a child process.

A module of its own, importing nothing but the standard library, because it is what a spawned
child process imports: the hash then starts within a few milliseconds and runs on its own core.
A thread would share the GIL with Volatility's pure-Python analysis, and each of the two would
slow the other (measured on an 8 GiB dump: the analysis 40 % slower, the hash 2× slower).
"""

from __future__ import annotations

import hashlib

CHUNK = 32 << 20  # large reads: fewer system calls, and a bounded buffer


def hash_file(path: str, done, stop, connection) -> None:
    """Child body: hash ``path``; progress in the shared counter ``done``, a stop request when
    the shared flag ``stop.value`` is set; sends ``("ok", hexdigest)``, ``("cancelled", None)``
    or ``("oserror", text)``. Both are plain shared memory (``RawValue``), not semaphores, so a
    process that ends abruptly (a fleet worker past its --timeout) leaves none behind."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb", buffering=0) as handle:
            buffer = bytearray(CHUNK)
            view = memoryview(buffer)
            while True:
                if stop.value:
                    connection.send(("cancelled", None))
                    return
                count = handle.readinto(buffer)
                if not count:
                    break
                digest.update(view[:count])
                done.value += count
        connection.send(("ok", digest.hexdigest()))
    except OSError as exc:
        connection.send(("oserror", exc.strerror or str(exc)))
    finally:
        connection.close()

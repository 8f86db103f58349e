"""Builders of the fleet tests: a small estate of emulator dumps with bad ones among them, and
``iumdump fleet`` run the way an analyst runs it (a subprocess, its own home and caches)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

FLEET_TIMEOUT = 600  # seconds a whole fleet run may take in a test before it counts as a hang


@dataclass
class Estate:
    """Evidence as collected from several machines: ``root/<host>/<file>``. ``good`` maps a dump's
    path to the synthesized result it is (a copy or a link); ``bad`` maps a path to why it is
    bad; ``symbols`` is a private copy of the symbol table (nothing a test shares)."""

    root: Path
    symbols: Path
    good: dict[Path, object] = field(default_factory=dict)
    bad: dict[Path, str] = field(default_factory=dict)
    others: list[Path] = field(default_factory=list)

    @property
    def dumps(self) -> list[Path]:
        return sorted(list(self.good) + list(self.bad))


def _place(path: Path, *, link_to: Path | None = None, copy_of: Path | None = None,
           data: bytes | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if link_to is not None:
        path.symlink_to(link_to)
    elif copy_of is not None:
        shutil.copyfile(copy_of, path)
    else:
        path.write_bytes(data or b"")
    return path


def make_estate(root: Path, synth_dump) -> Estate:
    """Three machines (Credential Guard; no VBS; the adversarial one, raw), and three bad files:
    random bytes, a crash dump cut short, an empty file. Plus a note that is not a dump."""
    credential_guard = synth_dump("credential-guard", "crash-bitmap")
    symbols = root / "symbols"
    table = credential_guard.isf_path.relative_to(credential_guard.symbols_dir)
    _place(symbols / table, copy_of=credential_guard.isf_path)
    evidence = root / "evidence"
    estate = Estate(root=evidence, symbols=symbols)
    estate.good[_place(evidence / "ws01" / "memory.dmp",
                       copy_of=credential_guard.dump_path)] = credential_guard
    no_vbs = synth_dump("no-vbs", "crash-bitmap")
    estate.good[_place(evidence / "ws02" / "memory.dmp", link_to=no_vbs.dump_path)] = no_vbs
    adversarial = synth_dump("adversarial", "raw")
    estate.good[_place(evidence / "srv03" / "memory.raw",
                       link_to=adversarial.dump_path)] = adversarial
    full = synth_dump("adversarial", "crash-full")
    with open(full.dump_path, "rb") as handle:
        head = handle.read(1 << 20)
    estate.bad[_place(evidence / "ws04" / "memory.dmp", data=head)] = "truncated crash dump"
    estate.bad[_place(evidence / "ws05" / "memory.raw",
                      data=os.urandom(64 << 10))] = "no Windows kernel found"
    estate.bad[_place(evidence / "ws06" / "memory.mem", data=b"")] = "is empty"
    estate.others.append(_place(evidence / "ws01" / "notes.txt", data=b"collected 09:41 UTC\n"))
    return estate


def fleet_env(home: Path) -> dict[str, str]:
    """A new user's environment: an empty home, so Volatility's caches start empty and private."""
    home.mkdir(parents=True, exist_ok=True)
    return dict(os.environ, HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))


def run_fleet(*args: str, home: Path, timeout: float = FLEET_TIMEOUT
              ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "iumdump.cli", "fleet", *args],
                          env=fleet_env(home), capture_output=True, text=True, timeout=timeout)

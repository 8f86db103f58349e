"""bench/bench_synth.py runs for every format ``iumdump synth`` writes (it prints figures and
asserts nothing, so only a test notices when it cannot run at all)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from markers import SLOW

from iumdump.slat.writers import FORMATS

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_synth.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_synth", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("fmt", [pytest.param(f, marks=() if f == "crash-live" else SLOW)
                                 for f in FORMATS])
def test_bench_synth_writer_mode_runs_for_every_format(fmt, tmp_path, capsys):
    """Regression: the benchmark kept its own table of file extensions without crash-live, so
    ``--formats crash-live`` died with a KeyError, and its stand-in machine gave the live
    format no frames to leave out."""
    assert _bench().main(["--mode", "writer", "--memory", "256M", "--formats", fmt,
                          "--workdir", str(tmp_path)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(fmt))
    assert "RSS" in row


def test_bench_synth_refuses_an_unknown_format(tmp_path):
    with pytest.raises(SystemExit):
        _bench().main(["--formats", "vmem", "--workdir", str(tmp_path)])


def test_bench_synth_writer_mode_refuses_a_machine_its_stand_in_does_not_fit(tmp_path):
    """Below 256 MiB the stand-in's VTL1 blocks cover all of RAM: nothing to time, and the
    ratio divided zero by zero."""
    with pytest.raises(SystemExit, match="at least 256 MiB"):
        _bench().main(["--mode", "writer", "--memory", "128M", "--workdir", str(tmp_path)])

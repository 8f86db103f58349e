"""A process that runs analysis after analysis (an ``iumdump fleet`` worker) must not keep what
Volatility's caches hold of earlier dumps."""

from __future__ import annotations

import gc
import weakref

from markers import SLOW

from iumdump.analysis import engine, volatility_env
from iumdump.commands.analyze import analyze


@SLOW  # two analyses and a collection of every object
def test_no_context_survives_its_analysis(synth_dump, monkeypatch):
    """Regression: Volatility memoises methods such as ``MMVAD_SHORT.get_tag`` in unbounded
    class-level caches keyed by the object, and every object holds its context (layers and the
    whole symbol table), so a fleet worker grew by the size of a symbol table per dump (37 MB
    with a real 19041 kernel's) without bound."""
    result = synth_dump("adversarial", "crash-bitmap")
    contexts = []
    open_kernel = engine.open_kernel

    def recording(*args, **kwargs):
        opened = open_kernel(*args, **kwargs)
        contexts.append(weakref.ref(opened.context))
        return opened

    monkeypatch.setattr(engine, "open_kernel", recording)
    for _ in range(2):
        report = analyze(str(result.dump_path), symbol_dirs=[str(result.symbols_dir)],
                         offline=True, quiet=True)
        assert report.summary["processes"]  # the analysis did read the dump
        volatility_env.release_volatility_caches()
    gc.collect()
    assert len(contexts) == 2
    assert [ref() for ref in contexts] == [None, None]

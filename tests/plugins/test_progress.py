"""The plugins report progress through Volatility's progress callback."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("plugin, options, text", [
    ("secureprocs", {}, "Reading processes"),
    ("extbasicinfo", {}, "Reading processes"),
    ("trustletpages", {}, "Testing frames for content"),
])
def test_progress_rises_to_100(plugin, options, text, synth_dump, plugin_session,
                               plugin_classes):
    dump = synth_dump("credential-guard", "raw", "builtin")
    calls = []
    session = plugin_session(dump).with_progress(lambda p, t: calls.append((p, t)))
    assert session.rows(plugin_classes[plugin], **options)
    percents = [p for p, _ in calls]
    assert percents and percents == sorted(percents)
    assert 0 <= percents[0] and percents[-1] == pytest.approx(100.0)
    assert any(text in description for _, description in calls)

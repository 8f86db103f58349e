"""Progress: tqdm bars for the phases of ``iumdump analyze``, and Volatility's progress callbacks.

Volatility reports progress as ``callback(percent, description)`` (percent 0–100, rising); the
analysis passes the same kind of callback down to each step. :func:`sub_range` gives a step its
share of a caller's 0–100; :func:`percent_callback` draws a callback on a bar.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from tqdm import tqdm

# Volatility's progress callback type (framework/constants: ProgressCallback), without
# importing Volatility for it.
ProgressCallback = Callable[[float, str], None] | None


def sub_range(callback: ProgressCallback, low: float, high: float,
              label: str | None = None) -> ProgressCallback:
    """A callback that reports a step's 0–100 as ``low``–``high`` of ``callback``'s, its
    descriptions followed by `` (label)`` when given; None when ``callback`` is None."""
    if callback is None:
        return None
    span = high - low
    if label is None:
        return lambda percent, text: callback(low + span * percent / 100, text)
    return lambda percent, text: callback(low + span * percent / 100, f"{text} ({label})")


def share(callback: ProgressCallback, index: int, count: int,
          label: str | None = None) -> ProgressCallback:
    """:func:`sub_range` for the ``index``-th of ``count`` equal steps."""
    return sub_range(callback, 100.0 * index / count, 100.0 * (index + 1) / count, label)


@contextlib.contextmanager
def phase_bar(description: str, quiet: bool, **options) -> Iterator[tqdm]:
    """One tqdm bar for one phase. ``disable=None`` turns bars off when stderr is not a
    terminal, so a redirected run or a failing one prints nothing but its result or one error
    line; ``leave=False`` clears the bar when the phase ends."""
    bar = tqdm(desc=description, disable=True if quiet else None, leave=False,
               dynamic_ncols=True, **options)
    try:
        yield bar
    finally:
        bar.close()


def percent_callback(bar: tqdm, prefix: str) -> Callable[[float, str], None]:
    """A Volatility progress callback (percent, description) that drives a 0–100 bar."""
    state = {"description": None}

    def callback(percent: float, description: str = "") -> None:
        if bar.disable:
            return
        if description != state["description"]:
            state["description"] = description
            bar.set_description_str(f"{prefix}: {description}" if description else prefix,
                                    refresh=False)
        bar.n = max(0.0, min(100.0, round(float(percent), 1)))
        # update(0) redraws at most every mininterval; the ends of a step are always drawn.
        if bar.n in (0.0, 100.0):
            bar.refresh()
        else:
            bar.update(0)

    return callback

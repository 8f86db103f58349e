"""report.html as a browser shows it: headless Chromium renders the adversarial machine's report
to a PNG, which must not be blank — the dark header, the severity colours and the page strip's
colours must all be on screen. Skipped where Chromium is not installed (.ci/run installs it)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path

import pytest
from markers import SLOW

from iumdump.commands import analyze as analyze_command
from iumdump.report import html

pytestmark = SLOW  # Chromium renders and screenshots the reports

CHROMIUM = next((found for name in ("chromium", "chromium-browser", "google-chrome")
                 if (found := shutil.which(name))), None)
WIDTH, HEIGHT = 1280, 2800  # the adversarial report's strips sit below its findings


def decode_png(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, channels, rows without filter bytes) of an 8-bit RGB/RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    at, chunks, header = 8, [], None
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        at += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    channels = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    previous = bytearray(stride)
    out = bytearray()
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:    # Sub
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif kind == 2:  # Up
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous))
        elif kind == 3:  # Average
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:  # Paeth
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b = previous[i]
                c = previous[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        out += line
        previous = line
    return width, height, channels, bytes(out)


def pixels(width: int, height: int, channels: int, rows: bytes, step: int = 2) -> Counter:
    """Colour counts over every ``step``-th pixel of every ``step``-th row."""
    counts: Counter = Counter()
    stride = width * channels
    for y in range(0, height, step):
        line = rows[y * stride:(y + 1) * stride]
        for x in range(0, stride, channels * step):
            counts[line[x:x + 3]] += 1
    return counts


def rgb(hex_colour: str) -> bytes:
    return bytes.fromhex(hex_colour.lstrip("#"))


def screenshot_colours(page: Path, tmp_path: Path) -> Counter:
    """Colour counts of ``page`` as headless Chromium renders it (WIDTH x HEIGHT), after the
    checks every rendered report must pass: not blank, not one colour, text and tables drawn."""
    screenshot = tmp_path / f"{page.stem}.png"
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
               f"--screenshot={screenshot}", f"--window-size={WIDTH},{HEIGHT}",
               page.resolve().as_uri()]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and screenshot.is_file(), proc.stderr[-2000:]

    width, height, channels, rows = decode_png(screenshot.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    counts = pixels(width, height, channels, rows)
    total = sum(counts.values())
    background, most = counts.most_common(1)[0]
    assert most < 0.9 * total, "the page is (almost) one colour"
    assert len(counts) > 50, "too few colours for rendered text and tables"
    return counts


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_report_renders_in_chromium(synth_dump, tmp_path):
    result = synth_dump("adversarial", "crash-bitmap")
    report = analyze_command.analyze(str(result.dump_path), symbol_dirs=[str(result.symbols_dir)],
                                     offline=True, quiet=True)
    paths = analyze_command.report_paths(tmp_path / "report", ("html",))
    [page] = analyze_command.write(report, paths, force=False)
    counts = screenshot_colours(Path(page), tmp_path)
    # The header band, the high-severity colour of the masquerade finding, and the strip's
    # "absent" colour (LsaIso.exe's and BioIso.exe's pages are left out of a bitmap dump).
    for colour in ("#0f172a", "#b91c1c", html.COLORS["absent"]):
        assert counts[rgb(colour)] > 20, f"{colour} is not on screen"

"""The dashboard in a real browser (headless Chromium): it loads without a console message, its script runs,
and its screenshot shows charts rather than a blank page.

Chromium comes from the OS (Debian: ``sudo apt-get install chromium``); ``CHROMIUM`` names another binary.
Missing, the tests skip locally and fail on CI (which installs it). With ``--enable-logging=stderr`` Chromium
writes every console message — log, warning, error, uncaught exception, CSP violation — to stderr as a
``CONSOLE`` line, without its level (Chromium 156: ``INFO:CONSOLE:5] "x", source: file:///…``). The page
itself logs nothing, so any such line is a failure; :func:`test_the_harness_sees_console_errors` proves the
harness would notice one. The screenshot is decoded with zlib and numpy (PNG filters undone here): no pillow.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from shared.services.dashboard import render_dashboard, write_dashboard
from tests.unit.test_dashboard import NOW, build_lake, sample_data

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = "install it with `sudo apt-get install chromium` (Debian/Ubuntu), or set CHROMIUM=/path/to/chrome"
CONSOLE_LINE = re.compile(r":CONSOLE[(:]")
TIMEOUT_S = 90


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def chromium() -> str:
    wanted = os.environ.get("CHROMIUM", "").strip()
    if wanted:
        found = shutil.which(wanted)
        if not found:
            pytest.fail(f"CHROMIUM={wanted!r} is not an executable; {INSTALL_HINT}")
        return found
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    message = f"headless Chromium not found (tried {', '.join(CANDIDATES)}): {INSTALL_HINT}"
    if _in_ci():
        pytest.fail(message + " (CI must run the browser tests, not skip them)")
    pytest.skip(message)


def run_chromium(binary: str, url: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One headless page load. ``--virtual-time-budget`` lets timers and the script finish before the
    screenshot/DOM dump; a private profile keeps runs independent of each other and of the user's."""
    cmd = [binary, "--headless=new", "--disable-gpu", "--no-sandbox", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000",
           "--window-size=1400,2000", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if CONSOLE_LINE.search(line)]


def read_png(path: Path) -> np.ndarray:
    """The pixels ([height, width, 3 or 4] uint8) of an 8-bit, non-interlaced RGB or RGBA PNG, as Chromium
    writes them: zlib, then each row's filter undone (PNG spec §9). None/Sub/Up rows are vectorised with
    numpy; Average/Paeth rows depend on the byte to their left, so they are a plain loop (~1.5 s a page)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat.append(chunk)
        pos += 12 + length
    assert header is not None, "no IHDR chunk"
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, f"unexpected PNG format {header}"
    bpp = 4 if colour == 6 else 3
    stride = width * bpp
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), np.uint8)
    prev = np.zeros(stride, np.uint8)
    for y in range(height):
        kind, line = int(raw[y, 0]), raw[y, 1:]
        if kind == 0:
            row = line.copy()
        elif kind == 1:  # Sub: a running sum per channel, mod 256
            row = (np.cumsum(line.reshape(width, bpp), axis=0, dtype=np.int64) % 256).astype(np.uint8).ravel()
        elif kind == 2:  # Up
            row = line + prev
        else:  # Average (3) or Paeth (4); the first pixel has no left neighbour (a = c = 0)
            cur, up = bytearray(line.tobytes()), prev.tobytes()
            for i in range(bpp):
                cur[i] = (cur[i] + (up[i] >> 1 if kind == 3 else up[i])) & 0xFF
            if kind == 3:
                for i in range(bpp, stride):
                    cur[i] = (cur[i] + ((cur[i - bpp] + up[i]) >> 1)) & 0xFF
            else:
                for i in range(bpp, stride):
                    a, b, c = cur[i - bpp], up[i], up[i - bpp]
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - c - c)
                    cur[i] = (cur[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
            row = np.frombuffer(bytes(cur), np.uint8)
        out[y] = row
        prev = out[y]
    return out.reshape(height, width, bpp)


def colours(path: Path) -> tuple[int, Counter]:
    """(pixel count, Counter of RGB colours as bytes)."""
    pixels = read_png(path)[:, :, :3].astype(np.uint32)
    packed = (pixels[:, :, 0] << 16) | (pixels[:, :, 1] << 8) | pixels[:, :, 2]
    values, counts = np.unique(packed, return_counts=True)
    return packed.size, Counter({int(v).to_bytes(3, "big"): int(n) for v, n in zip(values, counts, strict=True)})


def test_the_harness_sees_console_errors(chromium: str, tmp_path: Path) -> None:
    """If this Chromium stopped logging console messages to stderr, the other tests would pass vacuously."""
    page = tmp_path / "noisy.html"
    page.write_text('<!DOCTYPE html><html><body><p>x</p><script>console.error("x");\nnoSuchFunction();'
                    "</script></body></html>")
    run = run_chromium(chromium, page.as_uri(), tmp_path / "profile", "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    lines = console_lines(run.stderr)
    assert any('"x"' in line for line in lines), run.stderr[-2000:]
    assert any("noSuchFunction is not defined" in line for line in lines), run.stderr[-2000:]


def test_dashboard_of_a_generated_lake_renders(chromium: str, tmp_path: Path) -> None:
    lake, stock, _ = build_lake(tmp_path / "world")
    try:
        out = write_dashboard(tmp_path / "dashboard.html", lake=lake, stock=stock, now=NOW)
    finally:
        stock.close()
    png = tmp_path / "dashboard.png"
    run = run_chromium(chromium, out.as_uri(), tmp_path / "profile", f"--screenshot={png}")
    assert run.returncode == 0, run.stderr[-3000:]
    assert console_lines(run.stderr) == [], "the page logged to the console:\n" + "\n".join(console_lines(run.stderr))
    assert png.is_file() and png.stat().st_size > 10_000

    pixels, counts = colours(png)
    assert pixels == 1400 * 2000
    white = counts[b"\xff\xff\xff"]
    assert white < 0.9 * pixels, f"{white / pixels:.0%} of the screenshot is white"
    assert len(counts) > 200, f"only {len(counts)} colours: a blank or unstyled page"
    assert counts[bytes.fromhex("1f2a3d")] > 50_000, "the header band is painted"
    assert counts[bytes.fromhex("3d7fc1")] > 1_000, "the sales bars and healthy stock bars are painted"
    assert counts[bytes.fromhex("d62728")] > 300, "low-stock bars (and error chips) are painted"


def test_hostile_data_and_the_store_selector(chromium: str, tmp_path: Path) -> None:
    """Injected markup in skus and names stays text (a CSP violation or an executed script would log), and the
    script runs: ``#store=S002`` selects that store and hides the others."""
    page = tmp_path / "sample.html"
    page.write_text(render_dashboard(sample_data()), encoding="utf-8")
    run = run_chromium(chromium, page.as_uri() + "#store=S002", tmp_path / "profile", "--dump-dom")
    assert run.returncode == 0, run.stderr[-3000:]
    assert console_lines(run.stderr) == [], "\n".join(console_lines(run.stderr))
    dom = run.stdout
    assert 'data-js="ready"' in dom, "the script ran to its end"
    sections = dict(re.findall(r'<section id="(store-S\d+)"([^>]*)>', dom))
    assert set(sections) == {"store-S001", "store-S002", "store-S003"}
    assert "hidden" in sections["store-S001"] and "hidden" in sections["store-S003"]
    assert "hidden" not in sections["store-S002"]
    assert "<img" not in dom and "&lt;script&gt;alert" in dom

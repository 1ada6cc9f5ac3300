"""The report page in a real browser: headless Chromium (Debian package `chromium`) opens it offline
(`file://`), with no console errors, and every figure renders (decoded, non-blank pixels where it sits).

Skips when chromium is absent and CI is not set; under CI=true it must run (.ci/run installs it).
Set TRACEKIT_SCREENSHOTS=DIR to keep the screenshots.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--enable-logging=stderr",
    "--v=0",
]
WIDTH = 1280
# Injected into a copy of the page only (the page itself has no script): after load, write each figure's
# decoded size and its box in page coordinates into the DOM, which --dump-dom then prints.
PROBE = """<script>window.addEventListener('load', () => {
  for (const img of document.querySelectorAll('img.report-figure')) {
    const r = img.getBoundingClientRect();
    img.setAttribute('data-probe', [img.naturalWidth, img.naturalHeight, img.complete ? 1 : 0,
      Math.round(r.left + scrollX), Math.round(r.top + scrollY), Math.round(r.width), Math.round(r.height)].join(','));
  }
  document.body.setAttribute('data-height', document.documentElement.scrollHeight);
});</script>"""


def _chromium() -> str:
    exe = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if exe is None:
        if CI:
            pytest.fail("chromium is not installed (CI=true: .ci/run installs the Debian package)")
        pytest.skip("chromium not installed (apt-get install -y --no-install-recommends chromium)")
    return exe


def _run(exe: str, tmp: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [exe, *FLAGS, f"--user-data-dir={tmp / 'profile'}", *extra, url],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _console_errors(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]


def check_page(page: Path, tmp: Path, name: str) -> Path:
    """Open `page` offline in Chromium; assert no console errors and every figure rendered. Returns the
    full-page screenshot."""
    exe = _chromium()
    text = page.read_text(encoding="utf-8")
    n_figs = text.count('class="report-figure"')
    probe = page.with_name(page.stem + ".probe.html")
    probe.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    try:
        dom = _run(exe, tmp, probe.as_uri(), f"--window-size={WIDTH},900", "--dump-dom")
    finally:
        probe.unlink()
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert not _console_errors(dom.stderr), _console_errors(dom.stderr)
    probes = [tuple(int(v) for v in m.split(",")) for m in re.findall(r'data-probe="([^"]+)"', dom.stdout)]
    assert len(probes) == n_figs > 0, (len(probes), n_figs)
    for nw, nh, complete, *_ in probes:
        assert complete == 1 and nw > 0 and nh > 0, "a figure did not decode"
    height = int(re.search(r'data-height="(\d+)"', dom.stdout).group(1))
    shot = tmp / f"{name}.png"
    r = _run(exe, tmp, page.as_uri(), f"--window-size={WIDTH},{min(height, 16000)}", f"--screenshot={shot}")
    assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
    assert not _console_errors(r.stderr), _console_errors(r.stderr)
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)[..., :3]
    for *_, x, y, w, h in probes:
        assert y + h <= pixels.shape[0] and w > 100 and h > 100, ("figure outside the screenshot", x, y, w, h)
        region = pixels[y : y + h, x : x + w]
        ink = (region.mean(axis=2) < 0.9).mean()  # share of non-white pixels
        assert region.std() > 0.05 and ink > 0.01, f"blank figure region at y={y} (std {region.std():.3f})"
    keep = os.environ.get("TRACEKIT_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
    return shot


def test_browser_catches_console_errors(tmp_path: Path) -> None:
    """The harness itself: a page that throws is caught."""
    exe = _chromium()
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><p>x</p><script>throw new Error('boom')</script></body></html>")
    r = _run(exe, tmp_path, bad.as_uri(), "--dump-dom")
    assert any("Uncaught Error: boom" in ln for ln in _console_errors(r.stderr)), r.stderr[-2000:]


def test_h100_report_renders_in_chromium(h100_report, tmp_path: Path) -> None:
    out, r = h100_report
    assert r.returncode == 0, r.stderr[-2000:]
    check_page(out / "report.html", tmp_path, "report_h100")


def test_cpu_demo_report_renders_in_chromium(demo_run, tmp_path: Path) -> None:
    out, r = demo_run
    assert r.returncode == 0, r.stderr[-2000:]
    check_page(out / "report" / "report.html", tmp_path, "report_cpu_demo")


def test_prune_report_renders_in_chromium(prune_report, tmp_path: Path) -> None:
    out, r = prune_report
    assert r.returncode == 0, r.stderr[-2000:]
    check_page(out / "report.html", tmp_path, "report_prune")

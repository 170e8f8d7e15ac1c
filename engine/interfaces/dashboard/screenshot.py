"""A page as a headless Chromium renders it: its DOM, its console messages, a PNG.

Used by the dashboard's browser test and by ``benchmarks/dashboard_screenshot.py``.
Chromium runs as ``--headless --no-sandbox --disable-gpu`` with a virtual time
budget (timers run fast, and virtual time stands still while a request is
pending, so a Dash page has answered its callbacks and drawn its plots by
the time the DOM is dumped) and ``--enable-logging=stderr --v=0``, which
prints every console message and uncaught exception on stderr. A fresh
profile directory is used and removed each time.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BrowserPage", "find_chromium", "render_page", "take_screenshot"]

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# [pid:tid:date/time.micro:INFO:CONSOLE(12)] "message", source: http://... (12)   (and CONSOLE:12 in newer builds)
_CONSOLE = re.compile(r':CONSOLE[(:]\d*\)?\] "(?P<message>.*)", source: (?P<source>.*)$')
_ERROR_WORDS = re.compile(r"\b(uncaught|error|exception|failed|refused|violat)", re.IGNORECASE)


@dataclass
class BrowserPage:
    """What Chromium saw: the DOM after the time budget, every console message, and those that
    report an error (uncaught exceptions, ``console.error`` texts, failed requests)."""

    url: str
    dom: str
    console: list[str] = field(default_factory=list)
    screenshot: Path | None = None

    @property
    def errors(self) -> list[str]:
        return [m for m in self.console if _ERROR_WORDS.search(m)]


def find_chromium() -> str | None:
    """The Chromium (or Chrome) executable on this machine, or None."""
    for name in _CANDIDATES:
        if found := shutil.which(name):
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


#: Headless Chromium's fixed flags: no sandbox, GPU, extensions or first-run pages; the DOM to stdout,
#: the console to stderr.
_CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",  # software WebGL for the 3-D and parallel plots (our own page)
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--mute-audio",
    "--enable-logging=stderr",
    "--v=0",
    "--dump-dom",
)


def render_page(
    url: str,
    *,
    screenshot: str | Path | None = None,
    width: int = 1400,
    height: int = 2400,
    budget_ms: int = 20_000,
    timeout_s: float = 120.0,
    chromium: str | None = None,
) -> BrowserPage:
    """Load ``url`` in headless Chromium; return the DOM and console (and write a PNG to ``screenshot``).

    RuntimeError when no Chromium is installed or it fails.
    """
    exe = chromium or find_chromium()
    if exe is None:
        raise RuntimeError("no Chromium found (apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="boengine-chromium-")
    args = [
        exe,
        *_CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        f"--virtual-time-budget={budget_ms}",
    ]
    target: Path | None = None
    if screenshot is not None:
        target = Path(screenshot).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        args.append(f"--screenshot={target}")
    try:
        out = subprocess.run(
            [*args, url],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"chromium did not finish {url} within {timeout_s:.0f} s") from exc
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if out.returncode != 0 or not out.stdout.strip():
        tail = " | ".join(out.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"chromium exited {out.returncode} on {url}: {tail}")
    console = [
        f"{m['message']} ({m['source']})" for line in out.stderr.splitlines() if (m := _CONSOLE.search(line))
    ]
    if target is not None and not target.is_file():
        raise RuntimeError(f"chromium wrote no screenshot of {url} to {target}")
    return BrowserPage(url=url, dom=out.stdout, console=console, screenshot=target)


def take_screenshot(
    url: str,
    path: str | Path,
    *,
    width: int = 1400,
    height: int = 2400,
    budget_ms: int = 20_000,
    timeout_s: float = 120.0,
    chromium: str | None = None,
) -> BrowserPage:
    """A PNG of ``url`` at ``width`` x ``height`` written to ``path``; the page's DOM and console too."""
    return render_page(
        url,
        screenshot=path,
        width=width,
        height=height,
        budget_ms=budget_ms,
        timeout_s=timeout_s,
        chromium=chromium,
    )

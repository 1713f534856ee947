"""Headless Chromium: open the page from disk as a reader would, for its test and its screenshot.

Only the standard library: one ``chromium --headless`` run loads the file, prints the DOM after the
page's script ran (``--dump-dom``), optionally writes a screenshot, and logs every console message
(script errors, Content-Security-Policy violations) to stderr, where :func:`open_page` collects
them. The browser gets a fresh profile and no network (background services off).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
HEADLESS_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--force-device-scale-factor=1", "--enable-logging=stderr", "--v=0",
)  # fmt: skip
_CONSOLE = re.compile(r":CONSOLE[^\]]*\]\s*(.*)")


class BrowserError(RuntimeError):
    """Chromium is missing, failed or timed out; the message says which and shows its stderr tail."""


@dataclass
class PageView:
    """What the browser saw: the DOM after scripts ran, console messages, the screenshot file."""

    dom: str
    console: list[str] = field(default_factory=list)
    screenshot: Path | None = None


def find_chromium() -> str | None:
    """``$MMSPEC_CHROMIUM`` when set (a name or a path), else the first Chromium or Chrome on PATH;
    None when none of them is an executable."""
    names = [os.environ["MMSPEC_CHROMIUM"]] if os.environ.get("MMSPEC_CHROMIUM") else CHROMIUM_NAMES
    return next((path for name in names if (path := shutil.which(name))), None)


def open_page(
    page: str | os.PathLike[str],
    *,
    screenshot: str | os.PathLike[str] | None = None,
    size: tuple[int, int] = (1280, 1600),
    chromium: str | None = None,
    fragment: str = "",
    timeout: float = 120.0,
) -> PageView:
    """Load ``page`` (a local HTML file, plus ``#fragment`` when given) in headless Chromium and
    report what it showed."""
    exe = chromium or find_chromium()
    if not exe:
        raise BrowserError("chromium not found (install Debian's `chromium` package or set MMSPEC_CHROMIUM)")
    url = Path(page).resolve().as_uri() + (f"#{fragment}" if fragment else "")
    with tempfile.TemporaryDirectory(prefix="mmspec-chromium-") as profile:
        cmd = [exe, *HEADLESS_FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}"]
        if screenshot is not None:
            cmd.append(f"--screenshot={Path(screenshot).resolve()}")
        cmd += ["--dump-dom", url]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, errors="replace")
        except subprocess.TimeoutExpired:
            raise BrowserError(f"chromium did not finish within {timeout:.0f} s: {' '.join(cmd)}") from None
    if done.returncode != 0 or not done.stdout.strip():
        tail = "\n".join(done.stderr.splitlines()[-15:])
        raise BrowserError(f"chromium exited with status {done.returncode} on {url}:\n{tail}")
    console = [m.group(1) for line in done.stderr.splitlines() if (m := _CONSOLE.search(line))]
    shot = Path(screenshot) if screenshot is not None else None
    if shot is not None and not shot.is_file():
        raise BrowserError(f"chromium wrote no screenshot to {shot}")
    return PageView(dom=done.stdout, console=console, screenshot=shot)

"""Headless Chromium (Debian's package), to look at a page as a person would: its DOM after
scripts ran, and a screenshot. Pages are opened from disk with every network request sent to
a closed port, so a page that needs the network shows it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

# Requests to anywhere go through a proxy that is not there: nothing loads from the network.
NO_NETWORK = ["--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--hide-scrollbars", *NO_NETWORK]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise RuntimeError("chromium is not installed: scripts/bootstrap.sh installs it (apt-get install chromium)")
    return path


def dump_dom(page: Path) -> str:
    run = subprocess.run([chromium(), *FLAGS, "--dump-dom", page.resolve().as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def screenshot(page: Path, out: Path, width: int = 1280, height: int = 2400) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    run = subprocess.run([chromium(), *FLAGS, f"--window-size={width},{height}", f"--screenshot={out.resolve()}",
                          page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and out.is_file(), run.stderr[-2000:]
    return out

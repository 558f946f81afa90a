"""Drive ``dexsim play`` in a real browser (Debian's headless Chromium through Playwright): start the
server, open the page, press keys, time the key press to the new generated chunk on screen, watch the
server's memory. Used by the browser test and ``dexsim bench play``."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._deps import require

__all__ = ["PlayServer", "chromium_path", "drive", "free_port"]

_URL = re.compile(r"dexsim play: open (http://[\w.\-]+:\d+)")  # our line, not viser's banner (printed earlier)


def chromium_path() -> str | None:
    """Debian's ``chromium`` (or ``$DEXSIM_CHROMIUM``); None when there is none."""
    for name in (os.environ.get("DEXSIM_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (path := shutil.which(name)):
            return path
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident memory of a process (MB) from ``/proc``; nan where there is none."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class PlayServer:
    """``dexsim play ARGS --port PORT`` in a subprocess; ``url`` once it printed it, ``url_at`` when."""

    def __init__(self, args: list[str], port: int | None = None, timeout: float = 300.0) -> None:
        self.port = port or free_port()
        cmd = [sys.executable, "-m", "dexsim", "play", *args, "--port", str(self.port)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        self.url = ""
        self._ready = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()  # (a full pipe would block the server)
        if not self._ready.wait(timeout):
            self.stop()
            raise TimeoutError(f"dexsim play printed no URL in {timeout} s")
        if not self.url:
            raise RuntimeError(f"dexsim play exited ({self.proc.wait()}): {''.join(self.lines)[-2000:]}")

    def _drain(self) -> None:
        """Read the server's output for as long as it runs; note the URL (and when it came)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if not self.url and (m := _URL.search(line)):
                self.url, self.url_at = m.group(1), time.monotonic()
                self._ready.set()
        self._ready.set()

    def stop(self, grace: float = 90.0) -> int:
        """Interrupt it (as Ctrl-C does) and wait up to ``grace`` seconds (a loaded machine finishes its last
        recording slowly) before killing it; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGUSR1)  # its threads' stacks into ``lines`` before it is killed
                time.sleep(2.0)
                self.proc.kill()
        return self.proc.wait()

    def __enter__(self) -> PlayServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@dataclass
class DriveResult:
    """``latency_s``: key press to the new chunk on screen, per step; ``load_s``: URL printed to the page
    showing the episode (the headless browser's start included), ``page_s``: navigation to it; ``rss_mb``:
    the server's memory after each step; ``console_errors``; ``panel_changed``: the panel image differs
    after the first step; ``rewards``: the shown reward per step."""

    load_s: float
    page_s: float = float("nan")
    latency_s: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    rewards: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    panel_changed: bool = False
    second_tab_own_env: bool | None = None

    def summary(self) -> dict[str, Any]:
        lat = self.latency_s
        return {"steps": len(lat), "load_s": self.load_s, "page_s": self.page_s,
                "latency_s_median": statistics.median(lat) if lat else None, "latency_s": lat,
                "rss_mb_first": self.rss_mb[0] if self.rss_mb else None,
                "rss_mb_last": self.rss_mb[-1] if self.rss_mb else None, "console_errors": self.console_errors,
                "panel_changed": self.panel_changed}  # fmt: skip


def _png_pixels(data: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.int16)


def _panel_image(page: Any) -> Any:
    """The egocentric panel: the widest image on the page (the 3D view's corner widget is an image too)."""
    imgs = page.locator("img")
    boxes = [(imgs.nth(i).bounding_box() or {"width": 0, "height": 0}) for i in range(imgs.count())]
    widths = [b["width"] * b["height"] for b in boxes]
    if not widths or max(widths) == 0:
        raise RuntimeError("no image panel on the page")
    return imgs.nth(int(np.argmax(widths)))


def drive(server: PlayServer, steps: int = 3, screenshot: str | os.PathLike[str] | None = None,
          timeout: float = 120.0, second_tab: bool = False) -> DriveResult:  # fmt: skip
    """Open the page in headless Chromium, step ``steps`` times with the space key (after composing a wrist
    move with ``I``), and time each press until the status shows the new step. ``second_tab``: then open
    a second tab and check that it got its own episode (step 0) while the first keeps its own."""
    require("playwright", "the browser driver")
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    if exe is None:
        raise FileNotFoundError("no Chromium: install Debian's `chromium` (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox", "--use-gl=swiftshader"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            t_nav = time.monotonic()
            page.goto(server.url)
            page.get_by_text(re.compile(r"steps: 0(?!\d)")).first.wait_for(timeout=timeout * 1000)
            now = time.monotonic()
            result = DriveResult(load_s=now - server.url_at, page_s=now - t_nav)
            panel = _panel_image(page)
            before = _png_pixels(panel.screenshot())
            page.mouse.click(700, 450)  # focus the page (the 3D view), where hotkeys are heard
            for k in range(1, steps + 1):
                page.keyboard.press("i")
                t0 = time.monotonic()
                page.keyboard.press(" ")
                page.get_by_text(re.compile(rf"steps: {k}(?!\d)")).first.wait_for(timeout=timeout * 1000)
                result.latency_s.append(time.monotonic() - t0)
                result.rss_mb.append(rss_mb(server.proc.pid))
                text = page.get_by_text(re.compile(r"reward -?[\d.]+")).first.inner_text()
                result.rewards.append(re.search(r"reward (-?[\d.]+)", text).group(1))  # type: ignore[union-attr]
                if k == 1:  # the panel's new frames (it may still be swapping images): look for up to 3 s
                    for _ in range(30):
                        after = _png_pixels(panel.screenshot())
                        if after.shape != before.shape or (np.abs(after - before).max(-1) > 30).mean() > 0.002:
                            result.panel_changed = True
                            break
                        time.sleep(0.1)
            if screenshot is not None:
                page.screenshot(path=str(screenshot))
            if second_tab:
                other = browser.new_page()
                other.goto(server.url)
                other.get_by_text(re.compile(r"steps: 0(?!\d)")).first.wait_for(timeout=timeout * 1000)
                page.get_by_text(re.compile(rf"steps: {steps}(?!\d)")).first.wait_for(timeout=5000)
                result.second_tab_own_env = True
                other.close()
            result.console_errors = [e for e in errors if "WebSocket" not in e]
            return result
        finally:
            browser.close()

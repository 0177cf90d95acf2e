"""Open an HTML file in real headless Chromium and report what a reader's browser saw.

Driven through the DevTools protocol (a websocket), which — unlike scraping
``--dump-dom`` output or log lines — reports every network request the page
makes, every console message and uncaught exception, and lets us ask the
laid-out page whether each figure decoded and has a visible size, on screen
and in print media. A full-page screenshot is taken for a human to look at.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--window-size=1280,900",
]

# For every <img>: did it decode, and is it laid out with a visible size?
FIGURES_JS = """
JSON.stringify(Array.from(document.images).map(img => {
  const box = img.getBoundingClientRect();
  const style = getComputedStyle(img);
  return {alt: img.alt, complete: img.complete, naturalWidth: img.naturalWidth,
          width: box.width, height: box.height,
          visible: style.display !== 'none' && style.visibility !== 'hidden' && Number(style.opacity) > 0};
}))
"""


def find_chromium() -> str | None:
    """Path of the Chromium binary, if installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageReport:
    """What happened while the page loaded."""

    requests: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    figures: list[dict[str, Any]] = field(default_factory=list)
    print_figures: list[dict[str, Any]] = field(default_factory=list)
    title: str = ""
    layout: dict[str, Any] = field(default_factory=dict)


class _Session:
    def __init__(self, ws_url: str) -> None:
        import websocket

        # Chromium refuses websocket clients that send an Origin it does not allow.
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        message_id = self.next_id
        self.ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        if any(e.get("method") == method for e in self.events):
            return
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv())
            self.events.append(message)
            if message.get("method") == method:
                return
        raise TimeoutError(f"no {method} within {timeout} s")

    def close(self) -> None:
        self.ws.close()


def _devtools_port(profile: Path, proc: subprocess.Popen, timeout: float = 30.0) -> int:
    # With --remote-debugging-port=0 Chromium picks a free port and writes it here.
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with code {proc.returncode}")
        if marker.exists():
            text = marker.read_text().split()
            if text:
                return int(text[0])
        time.sleep(0.05)
    raise TimeoutError("chromium did not open its DevTools port")


def _first_page(port: int, timeout: float = 30.0) -> dict[str, Any]:
    # Chromium writes its port file before the endpoint accepts connections and before the
    # first tab is listed; on a loaded machine that gap is long enough to matter.
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
                pages = [t for t in json.load(response) if t.get("type") == "page"]
            if pages:
                return pages[0]
        except OSError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise TimeoutError("chromium listed no page to drive")
        time.sleep(0.1)


# How the page lays out: does anything but a table or a figure overflow the viewport, and can those scroll?
LAYOUT_JS = """
JSON.stringify({
  viewport: window.innerWidth,
  page: document.documentElement.scrollWidth,
  tables: Array.from(document.querySelectorAll('.table-wrap')).map(w => ({
    overflowing: w.scrollWidth > w.clientWidth, scrolls: getComputedStyle(w).overflowX === 'scroll'
      || getComputedStyle(w).overflowX === 'auto'})),
  figures: Array.from(document.images).map(img => img.getBoundingClientRect().width),
})
"""


def inspect_page(html_path: Path, screenshot: Path, *, width: int = 1280) -> PageReport:
    """Load ``html_path`` in headless Chromium ``width`` CSS pixels wide, collect what happened, write a PNG."""
    binary = find_chromium()
    if binary is None:
        raise RuntimeError("chromium not found; `make test` installs it (apt-get install chromium)")
    url = html_path.resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="abpool-chromium-") as profile:
        proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own process group, so its helpers can be stopped with it before the profile is removed.
            start_new_session=True,
        )
        try:
            port = _devtools_port(Path(profile), proc)
            page = _first_page(port)
            session = _Session(page["webSocketDebuggerUrl"])
            try:
                return _drive(session, url, screenshot, width)
            finally:
                session.close()
        finally:
            _stop_group(proc)


def _stop_group(proc: subprocess.Popen) -> None:
    """Stop Chromium and every helper it started; they write to the profile until they exit."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def _evaluate(session: _Session, expression: str) -> Any:
    result = session.call("Runtime.evaluate", expression=expression, returnByValue=True)
    return result["result"].get("value")


def _drive(session: _Session, url: str, screenshot: Path, width: int) -> PageReport:
    for domain in ("Page", "Runtime", "Log", "Network"):
        session.call(f"{domain}.enable")
    session.call("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=False)
    session.call("Page.navigate", url=url)
    session.wait_for("Page.loadEventFired")
    report = PageReport()
    report.title = _evaluate(session, "document.title")
    report.figures = json.loads(_evaluate(session, FIGURES_JS))
    report.layout = json.loads(_evaluate(session, LAYOUT_JS))
    metrics = session.call("Page.getLayoutMetrics")["cssContentSize"]
    shot = session.call(
        "Page.captureScreenshot",
        format="png",
        captureBeyondViewport=True,
        clip={"x": 0, "y": 0, "width": metrics["width"], "height": metrics["height"], "scale": 1},
    )
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    session.call("Emulation.setEmulatedMedia", media="print")
    report.print_figures = json.loads(_evaluate(session, FIGURES_JS))
    # Let late events (a failed request, a deferred error) arrive before judging.
    with contextlib.suppress(Exception):
        session.ws.settimeout(0.5)
        while True:
            session.events.append(json.loads(session.ws.recv()))
    for event in session.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            request_url = params["request"]["url"]
            if request_url != url and not request_url.startswith("data:"):
                report.requests.append(request_url)
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", []))
            report.console.append(f"{params.get('type')}: {text}")
        elif method == "Runtime.exceptionThrown":
            report.errors.append(params["exceptionDetails"].get("text", "exception"))
        elif method == "Log.entryAdded" and params["entry"].get("level") in ("error", "warning"):
            report.errors.append(f"{params['entry'].get('source')}: {params['entry'].get('text')}")
        elif method == "Network.loadingFailed":
            report.errors.append(f"request failed: {params.get('errorText')}")
    return report

"""A real headless Chromium driven over the Chrome DevTools Protocol: load a page at a phone width,
collect console errors and uncaught exceptions, measure horizontal overflow, take a screenshot.

Test support only. Chromium is started with `--remote-debugging-port=0` and tells its WebSocket
address on stderr; each check opens one page target, emulates a 375 CSS-pixel phone, navigates and
waits for the load event (bounded by TIMEOUT_SECONDS), then reads what it needs.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_SECONDS = 60.0
PHONE_WIDTH = 375
PHONE_HEIGHT = 800


def chromium_binary() -> str:
    found = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if found is None:
        message = "chromium is not installed (apt-get install chromium; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@dataclass
class PageReport:
    url: str
    console_errors: list[str] = field(default_factory=list)
    scroll_width: int = 0
    client_width: int = 0
    text: str = ""

    @property
    def scrolls_horizontally(self) -> bool:
        return self.scroll_width > self.client_width


class Browser:
    """One Chromium process; `check(url, screenshot)` per page."""

    def __init__(self, debugger_http: str) -> None:
        self._http = debugger_http
        self._next_id = 0

    def check(self, url: str, screenshot: Path | None = None, *, type_into: tuple[str, str] | None = None) -> PageReport:
        request = urllib.request.Request(f"{self._http}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            target = json.load(response)
        report = PageReport(url)
        try:
            with connect(target["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024, open_timeout=TIMEOUT_SECONDS) as ws:
                for method in ("Runtime.enable", "Log.enable", "Page.enable"):
                    self._call(ws, method, {}, report)
                self._call(ws, "Emulation.setDeviceMetricsOverride", {
                    "width": PHONE_WIDTH, "height": PHONE_HEIGHT, "deviceScaleFactor": 1, "mobile": True}, report)
                self._call(ws, "Page.navigate", {"url": url}, report)
                self._wait_event(ws, "Page.loadEventFired", report)
                if type_into is not None:
                    selector, value = type_into
                    script = (f"(function(){{var e=document.querySelector({json.dumps(selector)});e.value={json.dumps(value)};"
                              "e.dispatchEvent(new Event('input',{bubbles:true}));})()")
                    typed = self._call(ws, "Runtime.evaluate", {"expression": script}, report)
                    assert "exceptionDetails" not in typed, typed
                measured = self._call(ws, "Runtime.evaluate", {"returnByValue": True, "expression": (
                    "JSON.stringify({s: document.documentElement.scrollWidth, c: document.documentElement.clientWidth,"
                    " t: document.body.innerText})")}, report)
                values = json.loads(measured["result"]["value"])
                report.scroll_width, report.client_width, report.text = values["s"], values["c"], values["t"]
                if screenshot is not None:
                    shot = self._call(ws, "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False}, report)
                    screenshot.write_bytes(base64.b64decode(shot["data"]))
                time.sleep(0.2)  # late console messages
                self._drain(ws, report)
        finally:
            urllib.request.urlopen(f"{self._http}/json/close/{target['id']}", timeout=TIMEOUT_SECONDS).close()
        return report

    def _call(self, ws: Any, method: str, params: dict[str, Any], report: PageReport) -> dict[str, Any]:
        self._next_id += 1
        ws.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while True:
            message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == self._next_id:
                assert "error" not in message, message
                result: dict[str, Any] = message.get("result", {})
                return result
            self._note(message, report)

    def _wait_event(self, ws: Any, event: str, report: PageReport) -> None:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while True:
            message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            self._note(message, report)
            if message.get("method") == event:
                return

    def _drain(self, ws: Any, report: PageReport) -> None:
        while True:
            try:
                message = json.loads(ws.recv(timeout=0.05))
            except TimeoutError:
                return
            self._note(message, report)

    @staticmethod
    def _note(message: dict[str, Any], report: PageReport) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            report.console_errors.append(json.dumps(params["exceptionDetails"], ensure_ascii=False)[:500])
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            report.console_errors.append(json.dumps(params.get("args"), ensure_ascii=False)[:500])
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            report.console_errors.append(params["entry"].get("text", "")[:500])


@contextmanager
def running_browser() -> Iterator[Browser]:
    binary = chromium_binary()
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0",
             "--remote-debugging-address=127.0.0.1", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        try:
            assert process.stderr is not None
            deadline = time.monotonic() + TIMEOUT_SECONDS
            address = None
            while address is None:
                assert time.monotonic() < deadline and process.poll() is None, "chromium did not start"
                line = process.stderr.readline()
                if match := re.search(r"DevTools listening on ws://([^/]+)/", line):
                    address = match.group(1)
            # keep reading chromium's log so a full pipe never blocks it
            drain = threading.Thread(target=process.stderr.read, daemon=True)
            drain.start()
            yield Browser(f"http://{address}")
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            if process.stderr is not None:
                process.stderr.close()

"""End to end in headless Chromium: load the demo, upload a photo, predict, see depth.

Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
NUL-terminated JSON on file descriptors 3 and 4), which needs nothing beyond the
standard library: no websocket client, no playwright.
"""
from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest_plugins = ["fixtures_models"]

CHROMIUM = shutil.which("chromium") or ""  # on PATH, where `.ci/run` looks for it
pytestmark = [
    pytest.mark.skipif(not CHROMIUM, reason="chromium not on PATH (Debian package `chromium`)"),
    pytest.mark.filterwarnings("ignore::Warning:gradio.queueing"),
]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--remote-debugging-pipe"]
# No --virtual-time-budget here: it fast-forwards the page's clock for one-shot
# --screenshot runs, while this test waits in real time for the server's answer
# and takes the screenshot itself (Page.captureScreenshot).


class DevTools:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, user_data_dir: Path, log: Path):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # Chromium reads commands on fd 3 and writes replies on fd 4. bash moves our
        # pipe ends there (dash takes no fd above 9), so no preexec_fn has to run in
        # this threaded process.
        script = (f'exec "$@" 3<&{to_chrome_r} 4>&{from_chrome_w} '
                  f'{to_chrome_r}<&- {from_chrome_w}>&-')
        self.log = log
        # Its crash reporter writes under ~/.config whatever --user-data-dir says: a home
        # of its own keeps the tester's untouched
        home = user_data_dir.parent / "chromium-home"
        env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                ["/bin/bash", "-c", script, "bash", CHROMIUM, *FLAGS,
                 f"--user-data-dir={user_data_dir}", "about:blank"],
                pass_fds=(to_chrome_r, from_chrome_w), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=err, env=env)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._next_id = 0

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float = 120.0) -> dict[str, Any]:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError(f"no answer from Chromium (its log: {self.log})")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise ConnectionError(f"Chromium closed the debugging pipe (its log: {self.log})")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except (OSError, RuntimeError, TimeoutError, ConnectionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_chrome, self._from_chrome):
            os.close(fd)


class Page:
    def __init__(self, tools: DevTools):
        self.tools = tools
        target = tools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = tools.call("Target.attachToTarget",
                                  {"targetId": target, "flatten": True})["sessionId"]

    def call(self, method: str, params: dict[str, Any] | None = None, **kw) -> dict[str, Any]:
        return self.tools.call(method, params, session=self.session, **kw)

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout: float = 120.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def page(tmp_path: Path):
    tools = DevTools(tmp_path / "chromium-profile", tmp_path / "chromium.log")
    try:
        yield Page(tools)
    finally:
        tools.close()


def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshot is kept: $DEPTHNAS_TEST_ARTIFACTS, else pytest's base temp."""
    folder = Path(os.environ.get("DEPTHNAS_TEST_ARTIFACTS")
                  or tmp_path_factory.getbasetemp() / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_upload_predict_and_see_depth(demo_server, page: Page, photos: Path,
                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    photo = photos / "coffee.jpg"
    w, h = Image.open(photo).size
    page.call("Emulation.setDeviceMetricsOverride",
              {"width": 1280, "height": 1000, "deviceScaleFactor": 1, "mobile": False})
    page.call("Page.enable")
    page.call("Page.navigate", {"url": demo_server.url})
    file_input = "#input-image input[type=file]"
    page.wait_for(f"!!document.querySelector('{file_input}')", "the upload widget")
    assert "Model" in page.js("document.querySelector('#model-card').innerText")

    root = page.call("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
    node = page.call("DOM.querySelector", {"nodeId": root, "selector": file_input})["nodeId"]
    page.call("DOM.setFileInputFiles", {"nodeId": node, "files": [str(photo)]})
    page.wait_for("!!document.querySelector('#input-image img')", "the uploaded preview")

    page.js("document.querySelector('#predict-btn').click()")
    sizes = page.wait_for(
        """(() => {
             const imgs = [...document.querySelectorAll('#depth-slider img')];
             if (imgs.length < 2 || !imgs.every(i => i.complete && i.naturalWidth > 0))
               return null;
             return imgs.map(i => [i.naturalWidth, i.naturalHeight, i.src]);
           })()""", "the depth image in the slider", timeout=60)
    assert [s[:2] for s in sizes[:2]] == [[w, h], [w, h]]    # photo and depth, full size
    assert sizes[0][2] != sizes[1][2]
    status = page.wait_for("document.querySelector('#status').innerText", "the status line")
    assert "coffee.jpg" in status
    downloads = page.js("document.querySelector('#downloads').innerText.replace(/\\s+/g, '')")
    assert "coffee-depth16.png" in downloads and "coffee-depth.npy" in downloads

    # What the browser decoded for each slider image, pixel by pixel (same origin, so
    # a canvas may read it): the depth map is the one whose colours are inferno's.
    pixels = page.js("""(() => [...document.querySelectorAll('#depth-slider img')].map(img => {
        const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const ctx = c.getContext('2d');
        ctx.drawImage(img, 0, 0);
        return Array.from(ctx.getImageData(0, 0, c.width, c.height).data);
      }))()""")
    on_inferno = [_fraction_on_colormap(np.array(p, np.int32).reshape(-1, 4)[:, :3])
                  for p in pixels[:2]]
    assert max(on_inferno) > 0.99 and min(on_inferno) < 0.9, on_inferno

    shot = base64.b64decode(page.call("Page.captureScreenshot", {"format": "png"})["data"])
    path = artifacts_dir(tmp_path_factory) / "demo-depth.png"
    path.write_bytes(shot)
    print(f"screenshot: {path}")
    assert Image.open(path).size == (1280, 1000)


def _fraction_on_colormap(rgb: np.ndarray, name: str = "inferno", tol: int = 12) -> float:
    """Share of pixels within `tol` (per channel) of some colour of the colormap."""
    from depthnas.export.images import _lut
    lut = _lut(name).astype(np.int32)
    dist = np.abs(rgb[:, None, :] - lut[None, :, :]).max(axis=2).min(axis=1)
    return float((dist <= tol).mean())


def test_an_example_clicked_is_predicted(demo_server, page: Page) -> None:
    """The examples' copies in Gradio's cache are among the files the demo reads
    (it refuses a path an API call names outside the cache)."""
    page.call("Page.navigate", {"url": demo_server.url})
    first = "#examples button.gallery-item"
    # (the button is drawn before the picture in it)
    name = page.wait_for(f"document.querySelector('{first} img')?.src.split('/').pop()",
                         "the first example's picture")
    page.js(f"document.querySelector('{first}').click()")
    page.wait_for("!!document.querySelector('#input-image img')", "the example in the upload widget")
    page.js("document.querySelector('#predict-btn').click()")
    status = page.wait_for("(t => t.includes('inference') && t)(document.querySelector('#status')"
                           ".innerText)", "the status line", timeout=60)
    assert status.startswith(name), status

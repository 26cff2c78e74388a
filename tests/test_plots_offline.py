"""The HTML of ``dvc plots show`` and ``dvc plots diff`` draws every plot without a network.

DVC's own page loads vega, vega-lite and vega-embed from a CDN; offline it shows nothing.
``.dvc/config`` points DVC at ``.dvc/plots/template.html``, which carries the three libraries
inline. The checks here open the pages of a real tiny run in headless Chromium (Debian's
package) with every network request made to fail, and read what the page did through the
DevTools protocol: script errors, requests that left the machine, and the pixels and data
marks of each plot. The same check on DVC's own page must fail, or it could not tell the two
apart.

The browser is driven over ``--remote-debugging-pipe`` (JSON messages on file descriptors
3 and 4), which needs no websocket client and opens no port.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from dvc_render.base import Renderer
from dvc_render.html import PAGE_HTML
from helpers import REPO, sh

PLOTS_DIR = REPO / ".dvc" / "plots"
TEMPLATE = PLOTS_DIR / "template.html"
CHROMIUM = shutil.which("chromium")

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no `chromium` on PATH: install Debian's chromium package (.ci/run does, as root) "
    "to open the plots' HTML in a browser",
)

#: Run in the page before its own scripts: when vega-embed defines ``vegaEmbed``, wrap it so
#: that the view of each plot it draws is kept (DVC's page drops the result), for
#: :data:`CHECK_JS` to count the marks that plot's data made. It only observes: the call,
#: its arguments and its result pass through unchanged.
KEEP_VIEWS_JS = """
(() => {
  window.__plotViews = {};
  let embed;
  Object.defineProperty(window, 'vegaEmbed', {
    configurable: true,
    get() { return embed; },
    set(real) {
      embed = (el, ...rest) => real(el, ...rest).then(result => {
        window.__plotViews[String(el).replace(/^#/, '')] = result.view;
        return result;
      });
    },
  });
})();
"""

#: What the page shows of each plot. ``body > div[id]`` are the plots DVC writes (its
#: ``{plot_divs}``): vega-embed draws into them, images are ``<img>``. ``colours`` is the
#: number of distinct pixel colours of a canvas (1 when blank); ``marks`` counts the items of
#: the data marks in the plot's scenegraph (lines' points, rects, ...), not axes or legends,
#: which vega draws even with no data.
CHECK_JS = """
(() => {
  const marks = (view) => {
    let n = 0;
    const walk = (mark) => {
      if (mark.role === 'mark' && mark.marktype !== 'group') n += mark.items.length;
      for (const item of mark.items) for (const child of item.items || []) walk(child);
    };
    if (view) walk(view.scenegraph().root);
    return n;
  };
  const out = {};
  for (const div of document.querySelectorAll('body > div[id]')) {
    const imgs = [...div.querySelectorAll('img')];
    const canvas = div.querySelector('canvas');
    const svg = div.querySelector('svg.marks');
    const view = window.__plotViews && window.__plotViews[div.id];
    if (imgs.length) {
      out[div.id] = {kind: 'img', ok: imgs.every(i => i.complete && i.naturalWidth > 0)};
    } else if (canvas && canvas.width && canvas.height) {
      const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      const colours = new Set();
      for (let i = 0; i < px.length && colours.size < 2; i += 4) {
        colours.add((px[i] << 24 | px[i + 1] << 16 | px[i + 2] << 8 | px[i + 3]) >>> 0);
      }
      out[div.id] = {kind: 'canvas', colours: colours.size, marks: marks(view)};
    } else if (svg) {
      out[div.id] = {kind: 'svg', drawn: svg.querySelectorAll('.role-mark > *').length,
                     marks: marks(view)};
    } else {
      out[div.id] = {kind: 'none'};
    }
  }
  return {ready: document.readyState, plots: out};
})()
"""


class Chromium:
    """Headless Chromium over the DevTools pipe, with every network request made to fail:
    a proxy on the discard port that nothing listens on, and no host name resolving."""

    def __init__(self, executable: str, profile: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def onto_3_and_4() -> None:
            # Chromium reads commands on fd 3 and writes replies on fd 4; copies above 10
            # first, so that moving one pipe end onto 3 or 4 cannot close the other.
            read_end = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
            write_end = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.process = subprocess.Popen(
            [
                executable,
                "--headless",
                "--remote-debugging-pipe",
                # root in CI containers, where the sandbox cannot start; the page is ours
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                f"--user-data-dir={profile}",
                "--proxy-server=127.0.0.1:9",
                "--proxy-bypass-list=<-loopback>",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                "about:blank",
            ],
            pass_fds=(3, 4),
            preexec_fn=onto_3_and_4,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._replies: queue.Queue[dict[str, Any]] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._from_browser, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for message in messages:
                self._replies.put(json.loads(message))

    def call(
        self, method: str, params: dict | None = None, session: str | None = None
    ) -> dict[str, Any]:
        """Send one command and wait for its reply; events that arrive meanwhile are kept
        in :attr:`events`. A timeout or an error reply fails the test with the method."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._replies.get(timeout=30)
            if reply.get("id") == self._next_id:
                assert "error" not in reply, f"{method}: {reply['error']}"
                return reply["result"]
            self.events.append(reply)

    def drain(self) -> None:
        while not self._replies.empty():
            self.events.append(self._replies.get())

    def close(self) -> None:
        # a browser that already died has nothing to close; wait() below still reaps it
        with contextlib.suppress(AssertionError, queue.Empty, OSError):
            self.call("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


def open_offline(browser: Chromium, page: Path, plots: set[str]) -> dict[str, Any]:
    """Open ``page`` in a fresh tab, wait until every plot in ``plots`` is drawn (or 5 s
    after the load event), and say what happened: script errors, requests to anywhere but
    local files, and what each plot in the page shows."""
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
        "sessionId"
    ]
    for domain in ("Runtime", "Log", "Network", "Page"):
        browser.call(f"{domain}.enable", session=session)
    browser.call(
        "Page.addScriptToEvaluateOnNewDocument", {"source": KEEP_VIEWS_JS}, session=session
    )
    start = len(browser.events)
    browser.call("Page.navigate", {"url": page.as_uri()}, session=session)
    deadline, loaded = time.monotonic() + 30, None
    while True:
        state = browser.call(
            "Runtime.evaluate", {"expression": CHECK_JS, "returnByValue": True}, session=session
        )["result"]["value"]
        shown = state["plots"]
        if plots <= {name for name, seen in shown.items() if drawn(seen)}:
            break
        if loaded is None and state["ready"] == "complete":
            loaded = time.monotonic()
        # vega-embed draws within a second of the load event here; a page that has drawn
        # nothing 5 s after it is not going to, and waiting longer only slows the test
        if time.monotonic() > deadline or (loaded and time.monotonic() > loaded + 5):
            break
        time.sleep(0.25)
    browser.drain()
    events = [e for e in browser.events[start:] if e.get("sessionId") == session]
    browser.call("Target.closeTarget", {"targetId": target})
    return {"errors": script_errors(events), "requests": outside_requests(events), "plots": shown}


def drawn(seen: dict[str, Any]) -> bool:
    """A plot is drawn when its images loaded, or its canvas is not one flat colour (its SVG
    has drawn elements) and its data made marks: empty axes are not a plot."""
    if seen["kind"] == "img":
        return seen["ok"]
    if seen["kind"] == "canvas":
        return seen["colours"] > 1 and seen["marks"] > 0
    return seen["kind"] == "svg" and seen["drawn"] > 0 and seen["marks"] > 0


def script_errors(events: list[dict[str, Any]]) -> list[str]:
    """Uncaught exceptions, ``console.error`` calls and the browser's own error entries
    (a script that failed to load is one)."""
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            errors.append(details.get("exception", {}).get("description") or details["text"])
        elif method == "Runtime.consoleAPICalled" and params["type"] == "error":
            errors.append(
                " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            )
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(params["entry"]["text"] + " " + params["entry"].get("url", ""))
    return errors


def outside_requests(events: list[dict[str, Any]]) -> list[str]:
    """URLs the page asked for that are not in the page or on this disk."""
    return [
        e["params"]["request"]["url"]
        for e in events
        if e.get("method") == "Network.requestWillBeSent"
        and not re.match(r"(file|data|blob|about):", e["params"]["request"]["url"])
    ]


def declared_plots(repo: Path) -> set[str]:
    """The element id DVC gives each plot ``dvc.yaml`` declares: one per titled plot, one per
    image of a declared folder."""
    ids = set()
    for plot in yaml.safe_load((repo / "dvc.yaml").read_text())["plots"]:
        if isinstance(plot, dict):
            ids.add(Renderer.remove_special_chars(next(iter(plot))))
        else:
            for image in sorted((repo / plot).iterdir()):
                ids.add(Renderer.remove_special_chars(f"{plot}/{image.name}"))
    return ids


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    assert CHROMIUM is not None
    chromium = Chromium(CHROMIUM, tmp_path_factory.mktemp("chromium-profile"))
    yield chromium
    chromium.close()


def vendored() -> dict[str, tuple[str, str]]:
    """``PINS`` of ``.dvc/plots/vendor.py``: package -> (version, file in its npm tarball)."""
    spec = importlib.util.spec_from_file_location("vendor", PLOTS_DIR / "vendor.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PINS


def test_template_inlines_the_pinned_builds_unchanged() -> None:
    """Each inline script is the file its comment names, byte for byte (the checksum that
    ``vendor.py`` took from the npm tarball), of the pinned version, with its licence
    beside the template and its row in the README; and nothing in the template makes a
    browser fetch anything."""
    html = TEMPLATE.read_text(encoding="utf-8")
    found = re.findall(
        r"<!-- (\S+) (\S+): npm \S+ (\S+), (\S+), sha256 ([0-9a-f]{64}) -->"
        r"\s*<script>(.*?)</script>",
        html,
        re.S,
    )
    pins = vendored()
    assert [(f[0], f[1], f[2]) for f in found] == [(p, v, m) for p, (v, m) in pins.items()]
    readme = (PLOTS_DIR / "README.md").read_text(encoding="utf-8")
    for package, version, member, licence, digest, code in found:
        assert hashlib.sha256(code.encode("utf-8")).hexdigest() == digest, package
        assert f"| {package} | {version} | `{member}` | {licence} | `{digest}` |" in readme
        text = (PLOTS_DIR / f"LICENSE-{package}.txt").read_text(encoding="utf-8")
        # the BSD-3-Clause text's own words: its name is not in it
        assert "Redistribution and use in source and binary forms" in text, package
    assert "{plot_divs}" in html and "{scripts}" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)


@pytest.mark.slow
def test_dvc_writes_the_vendored_page(pipeline_repo: Path, tmp_path: Path) -> None:
    """``dvc plots show`` in a clone takes the template from ``.dvc/config``: the page holds
    the libraries and asks no CDN for them (checked without a browser, so a developer
    without Chromium still sees it)."""
    sh("dvc", "plots", "show", "-o", str(tmp_path / "show"), cwd=pipeline_repo)
    html = (tmp_path / "show" / "index.html").read_text(encoding="utf-8")
    assert "cdn.jsdelivr.net" not in html
    assert html.count("<!-- vega") == 3 and "vegaEmbed('#" in html


@pytest.mark.slow
@needs_chromium
def test_plots_draw_with_the_network_blocked(
    pipeline_repo: Path, tmp_path: Path, browser: Chromium
) -> None:
    """The pages of ``dvc plots show`` and ``dvc plots diff`` of the tiny run, opened with no
    network: no script error, no request leaves the machine, every declared plot drawn."""
    plots = declared_plots(pipeline_repo)
    sh("dvc", "plots", "show", "-o", str(tmp_path / "show"), cwd=pipeline_repo)
    sh("dvc", "plots", "diff", "-o", str(tmp_path / "diff"), cwd=pipeline_repo)
    for name in ("show", "diff"):
        seen = open_offline(browser, tmp_path / name / "index.html", plots)
        assert seen["errors"] == [], name
        assert seen["requests"] == [], name
        # diff adds a div of its own for the image folder, an empty vega spec (DVC 3.67.1)
        assert set(seen["plots"]) >= plots, name
        blank = {p: s for p, s in seen["plots"].items() if p in plots and not drawn(s)}
        assert blank == {}, name


@pytest.mark.slow
@needs_chromium
def test_dvc_own_page_fails_the_same_check(
    pipeline_repo: Path, tmp_path: Path, browser: Chromium
) -> None:
    """Without the template (DVC's built-in page, scripts from the CDN) the check above sees
    the failed CDN requests, the script errors and blank vega plots: it can tell."""
    builtin = tmp_path / "builtin.html"
    builtin.write_text(PAGE_HTML, encoding="utf-8")
    out = tmp_path / "cdn"
    sh("dvc", "plots", "show", "-o", str(out), "--html-template", str(builtin), cwd=pipeline_repo)
    plots = declared_plots(pipeline_repo)
    seen = open_offline(browser, out / "index.html", plots)
    assert any("cdn.jsdelivr.net" in url for url in seen["requests"])
    titled = {p for p in plots if not p.startswith("reports_figures_")}
    # one error a vega plot: its vegaEmbed call finds no function (the CDN script never came)
    assert sum("vegaEmbed is not a function" in e for e in seen["errors"]) == len(titled)
    assert {p for p, s in seen["plots"].items() if not drawn(s)} == titled

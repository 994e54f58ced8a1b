"""The book builds strictly (every Sphinx warning is an error) and works offline in a real browser.

`test_book_builds` runs `jupyter-book build -W -n --keep-going .` (notebooks execute through jupyter-cache,
so a rebuild without code changes is quick). The browser tests load the index and every chapter in headless
Chromium through the Chrome DevTools Protocol and fail on any console error, uncaught exception, failed load
or request outside the book's folder (the book must not need the network), check that the results table and
an SVG chart are visible, and save a screenshot of each page to screenshots/.

Set WBCBENCH_BOOK_HTML=<dir with index.html> to test an existing build instead of building.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from wbcbench.core.paths import REPO_ROOT
from wbcbench.report import findings
from wbcbench.runs.collect import load_runs

pytestmark = [pytest.mark.slow, pytest.mark.needs_data]

SCREENSHOTS = REPO_ROOT / "screenshots"
BUILD_TIMEOUT_S = 1500
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
                  "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
                  "--remote-allow-origins=*", "--window-size=1280,900",
                  # the panel check reads each chart's SVG file from the page (a file:// request inside the book)
                  "--allow-file-access-from-files"]
_REQUIRED = os.environ.get("WBCBENCH_REQUIRE_DATA") == "1"  # set by .ci/run, which installs chromium


def toc_pages() -> list[str]:
    """Every page of _toc.yml as a path relative to the html root ('book/intro.html', ...)."""
    toc = yaml.safe_load((REPO_ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                pages.append(e["file"])
            walk(e.get("sections"))
            walk(e.get("chapters"))
    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return [f"{p}.html" for p in pages]


@pytest.fixture(scope="session")
def book_build(data_root):
    """(html root, build seconds or None when reused, build log)."""
    reuse = os.environ.get("WBCBENCH_BOOK_HTML")
    if reuse:
        html = Path(reuse).resolve()
        if not (html / "index.html").is_file():
            pytest.fail(f"WBCBENCH_BOOK_HTML={reuse} has no index.html")
        return html, None, ""
    env = dict(os.environ, WBCBENCH_DATA=str(data_root), PYTHONPATH=str(REPO_ROOT))
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", "from jupyter_book.cli.main import main; main()",
                        "build", "-W", "-n", "--keep-going", "."],
                       cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    secs = time.perf_counter() - t0
    log = p.stdout + p.stderr
    if p.returncode != 0:
        pytest.fail(f"jupyter-book build failed (exit {p.returncode}) after {secs:.0f}s:\n{log[-6000:]}")
    return REPO_ROOT / "_build" / "html", secs, log


def test_book_builds(book_build):
    html, secs, log = book_build
    assert (html / "index.html").is_file()
    missing = [p for p in toc_pages() if not (html / p).is_file()]
    assert not missing, f"pages of _toc.yml not built: {missing}"
    if secs is not None:
        assert "WARNING" not in log, "a warning slipped through -W"
        print(f"book built in {secs:.0f}s")


# ---------------------------------------------------------------------------------------------------------
# Headless Chromium over the DevTools protocol


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class CDP:
    """The minimum of the Chrome DevTools Protocol: commands, and the events seen while waiting."""

    def __init__(self, ws_url: str):
        import websocket
        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, **params) -> dict:
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 60.0) -> dict:
        end = time.monotonic() + timeout
        for i, e in enumerate(self.events):
            if e["method"] == method:
                return self.events.pop(i)
        while time.monotonic() < end:
            self.ws.settimeout(max(0.1, end - time.monotonic()))
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                if msg["method"] == method:
                    return msg
                self.events.append(msg)
        raise TimeoutError(method)

    def drain(self, quiet_s: float = 1.0) -> None:
        """Collect events until none arrives for `quiet_s` seconds (late requests, deferred scripts)."""
        import websocket
        while True:
            self.ws.settimeout(quiet_s)
            try:
                msg = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                return
            if "method" in msg:
                self.events.append(msg)

    def close(self):
        self.ws.close()


@pytest.fixture(scope="session")
def browser(book_build, tmp_path_factory):
    exe = _chromium()
    if exe is None:
        msg = "chromium not installed (apt-get install -y chromium chromium-driver)"
        if _REQUIRED:
            pytest.fail(msg)
        pytest.skip(msg)
    pytest.importorskip("websocket", reason="websocket-client (requirements.txt) is needed for CDP")
    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.Popen([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        port_file = profile / "DevToolsActivePort"
        end = time.monotonic() + 60
        while not port_file.is_file() or not port_file.read_text().strip():
            if proc.poll() is not None or time.monotonic() > end:
                err = proc.stderr.read().decode(errors="replace") if proc.poll() is not None else ""
                pytest.fail(f"chromium did not start: {err[-2000:]}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            targets = [t for t in json.load(r) if t.get("type") == "page"]
        cdp = CDP(targets[0]["webSocketDebuggerUrl"])
        for domain in ("Page", "Network", "Runtime", "Log"):
            cdp.send(f"{domain}.enable")
        cdp.send("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
        yield cdp
        cdp.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def visit(cdp: CDP, html_root: Path, page: str) -> dict:
    """Load one page; return the problems seen (requests outside the book, console errors...)."""
    root_url = html_root.resolve().as_uri() + "/"
    cdp.events.clear()
    cdp.send("Page.navigate", url=root_url + page)
    cdp.wait_for("Page.loadEventFired")
    cdp.drain(1.0)
    outside, errors = [], []
    for e in cdp.events:
        m, p = e["method"], e.get("params", {})
        if m == "Network.requestWillBeSent":
            url = p["request"]["url"]
            if not (url.startswith(root_url) or url.startswith(("data:", "about:", "blob:"))):
                outside.append(url)
        elif m == "Network.loadingFailed" and not p.get("canceled"):
            errors.append(f"load failed: {p.get('errorText')} (request {p.get('requestId')})")
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            errors.append("console.error: " + " ".join(str(a.get("value", a.get("description", "")))
                                                       for a in p.get("args", [])))
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            errors.append(f"exception: {d.get('text')} {d.get('exception', {}).get('description', '')}")
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            errors.append(f"log error: {p['entry'].get('text')} {p['entry'].get('url', '')}")
    return {"outside": outside, "errors": errors}


def js(cdp: CDP, expression: str):
    r = cdp.send("Runtime.evaluate", expression=expression, returnByValue=True)
    if "exceptionDetails" in r:
        raise AssertionError(f"JS failed: {r['exceptionDetails']}")
    return r["result"].get("value")


def screenshot(cdp: CDP, page: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    out = SCREENSHOTS / (page.replace("/", "__").removesuffix(".html") + ".png")
    out.write_bytes(base64.b64decode(cdp.send("Page.captureScreenshot", format="png")["data"]))
    return out


VISIBLE = "(el => { const r = el.getBoundingClientRect(); const s = getComputedStyle(el); " \
          "return r.width > 20 && r.height > 20 && s.visibility !== 'hidden' && s.display !== 'none'; })"


#: what a built page must never show a reader
SHOWN_PROBLEMS = ("Traceback (most recent call last)", "no runs yet", "UserWarning", "FutureWarning",
                  "RuntimeWarning", "DeprecationWarning", "nan%")
#: table cells that mean a number is missing where the reader expects one
EMPTY_CELLS = ("nan", "NaN", "None", "<NA>", "NaT")
#: how-to chapters, whose code is what the reader came for (tests/test_reader_mode.py)
TUTORIAL_PAGES = ("notebooks/02_train_one_run.html", "notebooks/09_your_model.html")

#: per SVG chart of the page with at least two facet panels: the panels' mark groups, and how many differ
FACETS_JS = """[...document.querySelectorAll('article img')].filter(i => /\\.svg$/.test(i.src)).map(i => {
  const x = new XMLHttpRequest(); x.open('GET', i.src, false); x.send();
  const svg = new DOMParser().parseFromString(x.responseText, 'image/svg+xml');
  const cells = [...svg.querySelectorAll('g.role-scope.cell')]   // a facet's panels: the items of its cell group
    .flatMap(g => [...g.children].filter(c => c.tagName === 'g'));
  const sig = cells.map(c => [...c.querySelectorAll('g.role-mark')].map(m => m.innerHTML).join('|'));
  return {src: i.getAttribute('src'), cells: cells.length, distinct: new Set(sig).size};
}).filter(c => c.cells > 1)"""


def facet_panels(cdp: CDP) -> list[dict]:
    return js(cdp, FACETS_JS)


def dead_links(cdp: CDP, html_root: Path, page: str) -> list[str]:
    """Links of the page's article to a file of the book that does not exist, or to an anchor that the
    target page does not have."""
    root_url = html_root.resolve().as_uri() + "/"
    hrefs = js(cdp, "[...document.querySelectorAll('article a[href]')].map(a => a.href)")
    dead = []
    for href in dict.fromkeys(hrefs):
        if not href.startswith(root_url):
            continue
        path, _, anchor = href[len(root_url):].partition("#")
        target = html_root / urllib.request.url2pathname(path.split("?")[0])
        if not target.is_file():
            dead.append(href[len(root_url):])
        elif anchor and target.suffix == ".html" and f'id="{anchor}"' not in target.read_text(errors="replace"):
            dead.append(href[len(root_url):])
    return dead


@pytest.mark.parametrize("page", ["index.html", *toc_pages()])
def test_page_offline_without_errors(browser, book_build, page):
    html, _, _ = book_build
    seen = visit(browser, html, page)
    shot = screenshot(browser, page)
    assert not seen["outside"], f"{page} requests outside the book (offline build broken): {seen['outside']}"
    assert not seen["errors"], f"{page}: {seen['errors']}"
    assert js(browser, "document.querySelector('main, article, .bd-article') !== null")
    assert js(browser, "document.body.innerText.length") > 200, f"{page} looks empty (see {shot})"
    text = js(browser, "document.querySelector('article').innerText")
    shown = [w for w in SHOWN_PROBLEMS if w in text]
    assert not shown, f"{page} shows {shown} (see {shot})"
    outputs = js(browser, "[...document.querySelectorAll('article .output.stderr, article .output.traceback, "
                          "article .output.error')].length")
    assert not outputs, f"{page} shows {outputs} stderr/error cell outputs (see {shot})"
    broken = js(browser, "[...document.querySelectorAll('article img')].filter(i => !i.complete || "
                         "i.naturalWidth === 0).map(i => i.getAttribute('src'))")
    assert not broken, f"{page}: figures that do not load: {broken}"
    uncaptioned = js(browser, "[...document.querySelectorAll('article img')].filter(i => "
                              "!(i.closest('figure') && i.closest('figure').querySelector('figcaption')) || "
                              "!i.alt || /_images|\\.(svg|png)$/.test(i.alt)).map(i => i.getAttribute('src'))")
    assert not uncaptioned, f"{page}: figures without a numbered caption or a real alt text: {uncaptioned}"
    shrunk = js(browser, "[...document.querySelectorAll('article img')].filter(i => i.clientWidth > 0 && "
                         "i.naturalWidth > 1.02 * i.clientWidth).map(i => [i.getAttribute('src'), i.naturalWidth, "
                         "i.clientWidth])")
    assert not shrunk, f"{page}: figures wider than the page column, shown shrunk (smaller text): {shrunk}"
    assert not dead_links(browser, html, page), f"{page}: links to nothing: {dead_links(browser, html, page)}"
    same = [c for c in facet_panels(browser) if c["distinct"] < c["cells"]]
    assert not same, f"{page}: faceted charts whose panels repeat each other: {same}"
    cells = js(browser, "[...document.querySelectorAll('article td')].map(c => c.innerText.trim())")
    empty = sorted({c for c in cells if c in EMPTY_CELLS})
    assert not empty, f"{page}: table cells {empty} where a number belongs (see {shot})"
    if page.startswith("notebooks/") and page not in TUTORIAL_PAGES:
        shown_code = js(browser, "[...document.querySelectorAll('article .cell_input')]"
                                 ".filter(c => !c.closest('details:not([open])')).length")
        assert not shown_code, f"{page}: {shown_code} code cells shown; code is hidden behind a toggle"
        toggles = js(browser, "document.querySelectorAll('article details.above-input').length")
        assert toggles, f"{page}: no toggle shows the hidden code"


def test_results_table_and_chart_visible(browser, book_build):
    html, _, _ = book_build
    seen = visit(browser, html, "notebooks/03_benchmark_table.html")
    assert not seen["outside"] and not seen["errors"], seen
    n_tables = js(browser, f"[...document.querySelectorAll('article table')].filter({VISIBLE}).length")
    assert n_tables >= 1, "no visible table on the results page"
    has_paper = js(browser, "[...document.querySelectorAll('article table')].some(t => "
                            "t.innerText.includes('raabin:testB') && t.innerText.includes('resnet50_gn'))")
    assert has_paper, "the paper's published table is missing from the results page"
    js(browser, "document.querySelector('article table').scrollIntoView()")
    screenshot(browser, "results-table")
    facets = facet_panels(browser)      # the panel check of every page reads this chart: it must find it
    assert facets and all(c["cells"] >= 4 and c["distinct"] == c["cells"] for c in facets), facets


def test_svg_charts_visible(browser, book_build):
    html, _, _ = book_build
    seen = visit(browser, html, "notebooks/01_datasets.html")
    assert not seen["outside"] and not seen["errors"], seen
    svg_imgs = js(browser, f"[...document.querySelectorAll('article img')].filter(i => "
                           f"/\\.svg$/.test(i.src) || i.src.startsWith('data:image/svg')).filter({VISIBLE})"
                           ".filter(i => i.complete && i.naturalWidth > 0).length")
    inline = js(browser, f"[...document.querySelectorAll('article svg')].filter({VISIBLE}).length")
    assert svg_imgs + inline >= 2, f"expected SVG charts on the datasets page, found {svg_imgs} + {inline}"
    pngs = js(browser, f"[...document.querySelectorAll('article img')].filter(i => /\\.png$/.test(i.src))"
                       f".filter({VISIBLE}).filter(i => i.complete && i.naturalWidth > 0).length")
    assert pngs >= 1, "the sample-cell grid (PNG) is not visible"
    js(browser, "[...document.querySelectorAll('article img')].find(i => /\\.svg$/.test(i.src)).scrollIntoView()")
    screenshot(browser, "datasets-charts")


def test_findings_first(browser, book_build):
    """The first page opens with the findings: the sentences, the headline figure with its caption, and the box
    for a lab, before any other section."""
    html, _, _ = book_build
    seen = visit(browser, html, "book/intro.html")
    assert not seen["outside"] and not seen["errors"], seen
    first = js(browser, "(() => { const s = document.querySelector('article section section'); return {"
                        "title: s.querySelector('h2').innerText, items: s.querySelectorAll('ol > li').length, "
                        "fig: s.querySelector('figure img') !== null, "
                        "caption: (s.querySelector('figcaption') || {innerText: ''}).innerText, "
                        "box: (s.querySelector('.admonition .admonition-title') || {innerText: ''}).innerText}; })()")
    assert first["title"].startswith("What this book found"), first
    study, runs = findings.current_study(load_runs)  # one item per finding the study words (the page's own source)
    assert first["items"] == len(findings.sentences(study, runs, study.verdict(runs))) >= 5, first
    assert first["fig"] and first["caption"].startswith("Fig. 1"), first
    assert first["box"] == "What a lab should do", first

"""Check the built book (_build/html) offline: links, figures, maths, screenshots.

    python tests/browser_check.py [--html _build/html] [--shots _build/screenshots]

Two kinds of checks, both run by :func:`check_book` (tests/test_book.py calls it):

1. **Links** (no browser): every local ``href``/``src`` (and the index page's redirect) in
   every HTML page of the site must point at an existing file, must be relative (a leading
   ``/`` breaks ``file://``), and a ``#fragment`` into a built page must name an existing id.
   No page may load a script, style sheet or image from the network (links to external
   pages are fine).
2. **Pages in headless Chromium** (Debian package ``chromium``): the site is served on
   127.0.0.1 (random free port, ``http.server`` in a thread). For **every page** of the book
   (the index redirect, each chapter), a small probe page loads the page in a same-origin
   iframe, waits for MathJax and the images, and writes what it measured into its own DOM,
   which Chromium prints with ``--dump-dom``: every ``<img>`` loaded (``naturalWidth > 0``),
   MathJax output (``mjx-container``) present wherever the page has maths, no MathJax error
   (``mjx-merror``), no raw TeX delimiters left in the body text, no resource fetched from
   another origin, no rendered table cell showing ``NaN`` or ``e-0`` notation, every
   ``<figure>`` numbered and captioned, every content image inside a numbered figure, no table
   or figure wider than the text column (cut off or scrolled: ``scrollWidth`` against the
   column's width; collapsed dropdowns are opened for this measurement), no internal name of
   :mod:`emm_lib.study.shared.glossary` in the page's text (code excepted), and no page taller than
   :data:`MAX_PAGE_HEIGHT` (dropdowns closed). The method page is
   also opened over ``file://`` (maths must render there too), and a full-page screenshot of
   every checked page is saved as PNG (``_build/screenshots/<page>.png``).

3. **Figures' AUC axes** (no browser): every book figure records its absolute-AUC axes in its PNG
   (:func:`emm_lib.study.shared.plot_axes.png_bytes`); none may run below 0 or above 1.
4. **The landing page's chapter table** lists every chapter of ``_toc.yml``.

Returns a list of problems (empty means the book passed); the script exits 1 when any.
"""
from __future__ import annotations

import argparse
import functools
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlsplit

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
    "--disable-extensions", "--hide-scrollbars", "--mute-audio",
)
VIRTUAL_TIME_MS = 10_000
PROBE_NAME = "__emm_probe__.html"  # served by the test server only, never written to the site
RAW_TEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$")
# Tags whose text is code or not visible text: TeX-looking text there is legitimate.
SKIP_TEXT_TAGS = {"script", "style", "pre", "code", "textarea", "noscript", "template", "kbd", "samp",
                  "mjx-assistive-mml", "svg", "title"}
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
             "track", "wbr"}


# --------------------------------------------------------------------------- links

class _PageScan(HTMLParser):
    """Collect the local references, the ids and the TeX-looking body text of one HTML page."""

    REF_ATTRS = {"a": ("href",), "link": ("href",), "script": ("src",), "img": ("src", "srcset"),
                 "iframe": ("src",), "source": ("src", "srcset"), "video": ("src", "poster"),
                 "audio": ("src",), "embed": ("src",), "object": ("data",), "area": ("href",)}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refs: list[str] = []
        self.loads: list[str] = []  # what the browser fetches by itself (not links it follows)
        self.ids: set[str] = set()
        self.counts: dict[str, int] = {}
        self.text: list[str] = []
        self._skip_depth = 0
        self._stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        self.counts[tag] = self.counts.get(tag, 0) + 1
        for key in ("id", "name"):
            if a.get(key) and (key == "id" or tag == "a"):
                self.ids.add(a[key])
        for attr in self.REF_ATTRS.get(tag, ()):
            if a.get(attr):
                if attr == "srcset":
                    self.refs.extend(part.strip().split(" ")[0] for part in a[attr].split(",") if part.strip())
                else:
                    self.refs.append(a[attr])
        if tag in ("script", "img", "iframe", "source", "video", "audio", "embed") and a.get("src"):
            self.loads.append(a["src"])
        if tag == "link" and a.get("href") and set(a.get("rel", "").lower().split()) & {
                "stylesheet", "preload", "modulepreload", "icon", "prefetch", "manifest"}:
            self.loads.append(a["href"])
        if tag == "meta" and a.get("http-equiv", "").lower() == "refresh":
            m = re.search(r"url\s*=\s*(.+)$", a.get("content", ""), re.I)
            if m:
                self.refs.append(m.group(1).strip().strip("'\""))
        if tag in VOID_TAGS:
            return
        self._stack.append(tag)
        if tag in SKIP_TEXT_TAGS:
            self._skip_depth += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID_TAGS and self._stack and self._stack[-1] == tag:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID_TAGS or tag not in self._stack:
            return
        while self._stack:  # close implicitly closed tags too
            t = self._stack.pop()
            if t in SKIP_TEXT_TAGS:
                self._skip_depth -= 1
            if t == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._skip_depth == 0:
            self.text.append(data)


def _scan(path: Path) -> _PageScan:
    p = _PageScan()
    p.feed(path.read_text(encoding="utf-8", errors="replace"))
    p.close()
    return p


def check_links(site: Path) -> list[str]:
    """Broken local links, absolute local paths and dangling #fragments across every page."""
    site = site.resolve()
    problems: list[str] = []
    # Theme templates copied into _static/ (Jinja macros) are not pages of the book.
    pages = sorted(p for p in site.rglob("*.html") if p.relative_to(site).parts[0] not in ("_static", "_sources"))
    if not pages:
        return [f"no HTML pages under {site}"]
    scans = {p: _scan(p) for p in pages}
    for page, scan in scans.items():
        rel_page = page.relative_to(site).as_posix()
        for ref in dict.fromkeys(scan.refs):  # unique, in order
            ref = html.unescape(ref).strip()
            parts = urlsplit(ref)
            if parts.scheme or ref.startswith("//") or not ref:
                continue  # external (http, https, mailto, data, javascript) or empty
            if ref.startswith("/"):
                problems.append(f"{rel_page}: absolute local link {ref!r} (breaks file://)")
                continue
            target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            if parts.path and not target.is_relative_to(site):
                problems.append(f"{rel_page}: link {ref!r} leaves the site")
                continue
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{rel_page}: broken link {ref!r} (no {target.relative_to(site)})")
                continue
            frag = unquote(parts.fragment)
            if frag and target.suffix == ".html" and target in scans and frag not in scans[target].ids:
                problems.append(f"{rel_page}: link {ref!r} names a missing anchor #{frag}")
    return problems


def check_offline(site: Path) -> list[str]:
    """Pages must not make the browser fetch anything from the network (scripts, styles, images)."""
    problems = []
    for page in sorted(site.rglob("*.html")):
        rel = page.relative_to(site)
        if rel.parts[0] in ("_static", "_sources"):
            continue
        for ref in dict.fromkeys(_scan(page).loads):
            parts = urlsplit(html.unescape(ref).strip())
            if parts.scheme in ("http", "https") or ref.startswith("//"):
                problems.append(f"{rel.as_posix()}: loads {ref!r} from the network (the book must work offline)")
    return problems


# --------------------------------------------------------------------------- browser

def find_chromium() -> str | None:
    """The Chromium executable: $EMM_CHROMIUM, else the first known name on PATH."""
    env = os.environ.get("EMM_CHROMIUM")
    if env:
        return env if shutil.which(env) else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        pass

    def do_GET(self) -> None:  # noqa: N802
        if urlsplit(self.path).path == "/" + PROBE_NAME:
            body = PROBE_HTML.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # the browser hung up: not a problem
            super().handle_error(request, client_address)


@contextmanager
def serve(site: Path) -> Iterator[str]:
    """Serve ``site`` on 127.0.0.1 on a free port in a background thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _chromium(chromium: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="emm-chromium-") as profile:
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)


def dump_dom(chromium: str, url: str, window: str = "1280,2000") -> str:
    """The page's DOM after its scripts ran (virtual time budget), as HTML text."""
    r = _chromium(chromium, f"--virtual-time-budget={VIRTUAL_TIME_MS}", f"--window-size={window}",
                  "--dump-dom", url)
    if r.returncode != 0 or not r.stdout.strip():
        raise RuntimeError(f"chromium --dump-dom {url} failed (rc {r.returncode}): {r.stderr[-2000:]}")
    return r.stdout


def screenshot(chromium: str, url: str, path: Path, window: str = "1280,2000") -> Path:
    """Save a PNG screenshot of ``url`` after its scripts ran."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    r = _chromium(chromium, f"--virtual-time-budget={VIRTUAL_TIME_MS}", f"--window-size={window}",
                  f"--screenshot={path}", url)
    if not path.exists() or path.stat().st_size == 0:
        raise RuntimeError(f"chromium --screenshot {url} wrote nothing (rc {r.returncode}): {r.stderr[-2000:]}")
    return path


# The probe loads a page of the same origin in an iframe, waits for MathJax and the images,
# and writes its measurements as JSON into <pre id="emm-result">.
PROBE_HTML = r"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>probe</title></head>
<body><pre id="emm-result">pending</pre>
<iframe id="emm-frame" style="width:1280px;height:2000px;border:0"></iframe>
<script>
const SKIP = "script,style,pre,code,textarea,noscript,template,kbd,samp,mjx-assistive-mml,svg";
const out = document.getElementById("emm-result");
const frame = document.getElementById("emm-frame");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let done = false;
async function measure() {
  const w = frame.contentWindow, d = frame.contentDocument;
  if (d.querySelector('meta[http-equiv="Refresh" i]')) return;  // a redirect: wait for the target
  if (done) return;
  done = true;
  const hasMath = d.querySelector(".math, span.math, div.math") !== null;
  let mathjax = "absent";
  for (let i = 0; i < 100 && hasMath && !(w.MathJax && w.MathJax.startup && w.MathJax.startup.promise); i++) await sleep(100);
  if (w.MathJax && w.MathJax.startup && w.MathJax.startup.promise) {
    try { await w.MathJax.startup.promise; mathjax = "typeset"; } catch (e) { mathjax = "error: " + e; }
  }
  const imgs = Array.from(d.images);
  await Promise.all(imgs.map((im) => im.complete ? null : new Promise((r) => { im.onload = im.onerror = r; })));
  const body = d.body.cloneNode(true);
  body.querySelectorAll(SKIP).forEach((e) => e.remove());
  const text = body.textContent;
  const rawTex = (text.match(/\\\(|\\\)|\\\[|\\\]|\$\$/g) || []).length;
  const origin = frame.contentWindow.location.origin;
  const external = w.performance.getEntriesByType("resource").map((e) => e.name)
      .filter((n) => !n.startsWith(origin) && !n.startsWith("data:") && !n.startsWith("blob:"));
  // Tables: cells that show NaN or scientific notation (the presentation layer never does).
  const tableProblems = [];
  d.querySelectorAll("table").forEach((t, ti) => {
    t.querySelectorAll("td, th").forEach((c) => {
      const v = c.textContent.trim();
      if (/^(nan|NaN|<NA>|None|NaT)$/.test(v) || /\bNaN\b/.test(v)) tableProblems.push(`table ${ti + 1}: cell "${v}" (NaN)`);
      else if (/\de-0\d/i.test(v)) tableProblems.push(`table ${ti + 1}: cell "${v}" (e-0 notation)`);
    });
  });
  // Figures: every <figure> carries a number; every content image sits in a numbered figure.
  const main = d.querySelector("article.bd-article") || d.querySelector("main") || d.body;
  const figures = Array.from(main.querySelectorAll("figure")).map((f) => ({
    id: f.id || (f.querySelector("[id]") || {}).id || "",
    number: (f.querySelector(".caption-number") || {textContent: ""}).textContent.trim()}));
  const looseImages = Array.from(main.querySelectorAll("img")).filter((im) => !im.closest("figure"))
      .map((im) => im.getAttribute("src"));
  const height = Math.max(d.documentElement.scrollHeight, d.body.scrollHeight);
  // Tables and figures wider than the text column (cut off at the right edge, or a scroll bar),
  // those in collapsed dropdowns too: opened for the measurement (the height above is the closed page's).
  const closed = Array.from(main.querySelectorAll("details:not([open])"));
  closed.forEach((e) => { e.open = true; });
  const cs = w.getComputedStyle(main);
  const column = main.clientWidth - parseFloat(cs.paddingLeft || 0) - parseFloat(cs.paddingRight || 0);
  const wide = [];
  main.querySelectorAll("table, figure, img").forEach((el) => {
    const width = Math.max(el.scrollWidth, el.getBoundingClientRect().width);
    if (width > column + 1) {
      const cap = el.querySelector("caption, figcaption, th");
      wide.push(`${el.tagName.toLowerCase()} ${el.id || (cap ? '"' + cap.textContent.trim().slice(0, 40) + '"' : "")}`
                + ` is ${Math.round(width)} px wide, the column ${Math.round(column)} px`
                + (el.closest("details") ? " (in a dropdown)" : ""));
    }
  });
  closed.forEach((e) => { e.open = false; });
  const mainClone = main.cloneNode(true);
  mainClone.querySelectorAll(SKIP).forEach((e) => e.remove());
  const mainText = mainClone.textContent;
  const uncaptioned = Array.from(main.querySelectorAll("figure")).filter((f) => {
    const cap = f.querySelector("figcaption");
    const num = cap && cap.querySelector(".caption-number");
    return !cap || cap.textContent.replace(num ? num.textContent : "", "").trim().length === 0;
  }).map((f) => f.id || "(no id)");
  const fonts = [];
  if (d.fonts) { await d.fonts.ready; d.fonts.forEach((f) => { if (f.family.includes("MJX")) fonts.push(f.family + ":" + f.status); }); }
  out.textContent = JSON.stringify({
    url: w.location.href, title: d.title, hasMath, mathjax,
    mjx: d.querySelectorAll("mjx-container").length,
    merror: d.querySelectorAll("mjx-merror").length,
    mathNodes: d.querySelectorAll(".math").length,
    images: imgs.map((im) => ({src: im.getAttribute("src"), w: im.naturalWidth, h: im.naturalHeight})),
    rawTex, rawTexSample: rawTex ? text.slice(Math.max(0, text.search(/\\\(|\\\[|\$\$/) - 60), text.search(/\\\(|\\\[|\$\$/) + 60) : "",
    external, fonts, tableProblems, figures, looseImages, height, wide, mainText, uncaptioned, column,
  });
}
frame.addEventListener("load", () => { measure().catch((e) => { out.textContent = JSON.stringify({fatal: String(e)}); }); });
frame.src = new URLSearchParams(location.search).get("page");
</script></body></html>
"""


@dataclass
class PageReport:
    """What the probe measured on one page, with the problems found."""

    name: str
    url: str
    data: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _probe_result(dom: str) -> dict:
    m = re.search(r'<pre id="emm-result">(.*?)</pre>', dom, re.S)
    if not m:
        raise RuntimeError("probe page produced no result element")
    raw = html.unescape(m.group(1)).strip()
    if raw == "pending":
        raise RuntimeError("probe did not finish within the virtual time budget")
    return json.loads(raw)


def probe_page(chromium: str, base: str, page: str) -> PageReport:
    """Open ``page`` (relative to the site) through the probe and judge what it measured."""
    rep = PageReport(name=page, url=base + page)
    try:
        data = _probe_result(dump_dom(chromium, f"{base}{PROBE_NAME}?page=/{page}"))
    except (RuntimeError, json.JSONDecodeError, subprocess.TimeoutExpired) as e:
        rep.problems.append(f"{page}: could not be checked in Chromium: {e}")
        return rep
    rep.data = data
    if "fatal" in data:
        rep.problems.append(f"{page}: probe failed: {data['fatal']}")
        return rep
    for im in data["images"]:
        if im["w"] <= 0:
            rep.problems.append(f"{page}: image {im['src']!r} did not load (naturalWidth 0)")
    if data["hasMath"]:
        if data["mathjax"] != "typeset":
            rep.problems.append(f"{page}: MathJax did not run ({data['mathjax']})")
        if data["mjx"] == 0:
            rep.problems.append(f"{page}: has maths but no MathJax output (mjx-container)")
    if data["merror"]:
        rep.problems.append(f"{page}: {data['merror']} MathJax error(s) (mjx-merror): bad TeX")
    if data["rawTex"]:
        rep.problems.append(f"{page}: {data['rawTex']} raw TeX delimiter(s) left in the text, "
                            f"e.g. …{data['rawTexSample']}…")
    if data["external"]:
        rep.problems.append(f"{page}: fetched resources from other origins: {data['external'][:5]}")
    for tp in data.get("tableProblems", [])[:10]:
        rep.problems.append(f"{page}: rendered {tp}")
    for fig in data.get("figures", []):
        if not fig["number"]:
            rep.problems.append(f"{page}: figure {fig['id'] or '(no id)'} has no number (give it a caption and a name)")
    for src in data.get("looseImages", []):
        rep.problems.append(f"{page}: image {src!r} is not in a numbered figure")
    for w in data.get("wide", []):
        rep.problems.append(f"{page}: {w} (split or transpose it: emm_lib.study.shared.present.table)")
    for f in data.get("uncaptioned", []):
        rep.problems.append(f"{page}: figure {f} has no caption")
    for name in internal_names_in(data.get("mainText", "")):
        rep.problems.append(f"{page}: the text shows the internal name {name!r} (use its label in emm_lib.study.shared.glossary)")
    if data.get("height", 0) > MAX_PAGE_HEIGHT:
        rep.problems.append(f"{page}: the page is {data['height']} px tall at 1280 px wide (limit {MAX_PAGE_HEIGHT}): "
                            "put per-point tables in dropdowns or an appendix")
    failed_fonts = [f for f in data.get("fonts", []) if f.endswith(":error")]
    if failed_fonts:
        rep.problems.append(f"{page}: MathJax fonts failed to load: {failed_fonts[:5]}")
    return rep


def internal_names_in(text: str) -> list[str]:
    """The glossary's internal names (and the internal patterns) that ``text`` shows, each once."""
    found = [n for n in _glossary().internal_names() if re.search(rf"(?<![\w.`/-]){re.escape(n)}(?![\w-])", text)]
    for pat in _glossary().INTERNAL_PATTERNS:
        found += [m.group(0) for m in re.finditer(pat, text)]
    return list(dict.fromkeys(found))


def _glossary():
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from emm_lib.study.shared import glossary

    return glossary


def check_auc_axes(site: Path, page: str, images: list[dict]) -> list[str]:
    """Every figure PNG on ``page`` that records its AUC axes (emm_lib.study.shared.plot_axes.AXES_KEY) keeps them in [0, 1]."""
    from PIL import Image

    key = "emm:axes"
    problems = []
    for im in images:
        src = urlsplit(html.unescape(im.get("src") or "")).path
        path = (site / page).parent / unquote(src)
        if not src or not path.suffix.lower() == ".png" or not path.exists():
            continue
        with Image.open(path) as png:
            raw = getattr(png, "text", {}).get(key)
        for ax in json.loads(raw) if raw else []:
            if ax["lo"] < -1e-9 or ax["hi"] > 1 + 1e-9:
                problems.append(f"{page}: figure {src} has an AUC axis ({ax['axis']}, {ax['label']!r}) from "
                                f"{ax['lo']:.3f} to {ax['hi']:.3f}: AUC lies in [0, 1]")
    return problems


def check_chapter_table(site: Path, toc: Path = REPO / "_toc.yml", landing: str = "book/intro.html") -> list[str]:
    """Every chapter of the table of contents is a row of the landing page's chapter table."""
    files = re.findall(r"^\s*-\s*file:\s*(\S+)", toc.read_text(encoding="utf-8"), re.M)
    page = (site / landing).read_text(encoding="utf-8")
    linked = set()
    for t in re.findall(r"<table.*?</table>", page, re.S):
        for href in re.findall(r'href="([^"#]+)', t):
            linked.add((Path(landing).parent / unquote(href)).as_posix().replace("/./", "/"))
    linked = {os.path.normpath(h) for h in linked}
    return [f"{landing}: the chapter table has no row for {f}" for f in files
            if os.path.normpath(f + ".html") not in linked]


def _font_summary(fonts: list[str]) -> str:
    states = [f.rsplit(":", 1)[-1] for f in fonts]
    return f"MathJax fonts {states.count('loaded')} loaded/{states.count('error')} failed"


def check_file_url(chromium: str, path: Path) -> list[str]:
    """Open ``path`` over file:// and check that its maths rendered there too."""
    url = path.resolve().as_uri()
    try:
        dom = dump_dom(chromium, url)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        return [f"file://{path.name}: could not be opened in Chromium: {e}"]
    scan = _PageScan()
    scan.feed(dom)
    problems = []
    if scan.counts.get("mjx-container", 0) == 0:
        problems.append(f"{url}: no MathJax output over file:// (mjx-container missing)")
    if scan.counts.get("mjx-merror", 0):
        problems.append(f"{url}: MathJax errors over file://")
    raw = RAW_TEX.findall("".join(scan.text))
    if raw:
        problems.append(f"{url}: {len(raw)} raw TeX delimiter(s) left over file://")
    return problems


SKIP_PAGES = {"genindex.html", "search.html", "py-modindex.html"}
#: The tallest a page may be at 1280 px wide: a reader finds a chapter's finding without scrolling
#: past per-point tables (those go into dropdowns or an appendix).
MAX_PAGE_HEIGHT = 14_000


def default_pages(site: Path) -> list[str]:
    """Every page of the book: index (the landing redirect) first, then each built page."""
    pages = ["index.html"]
    for p in sorted(site.rglob("*.html")):
        rel = p.relative_to(site)
        if rel.parts[0] in ("_static", "_sources", "_images") or rel.name in SKIP_PAGES or rel.as_posix() == "index.html":
            continue
        pages.append(rel.as_posix())
    return pages


def check_book(site: Path | str = REPO / "_build" / "html", shots: Path | str | None = None,
               pages: list[str] | None = None, chromium: str | None = None,
               log=print) -> list[str]:
    """Run every check on the built site; returns the problems (empty: passed)."""
    site = Path(site).resolve()
    shots = Path(shots) if shots else site.parent / "screenshots"
    if not (site / "index.html").exists():
        return [f"{site}/index.html does not exist: build the book first (make html)"]
    problems = check_links(site)
    log(f"links: every page of {site} scanned, {len(problems)} problem(s)")
    offline = check_offline(site)
    log(f"offline: {len(offline)} page resource(s) from the network")
    problems += offline
    chapters = check_chapter_table(site) if (site / "book" / "intro.html").exists() else []
    log(f"chapter table: {len(chapters)} chapter(s) missing")
    problems += chapters
    chromium = chromium or find_chromium()
    if not chromium:
        return problems + ["no Chromium found (apt-get install chromium, or set EMM_CHROMIUM)"]
    pages = pages or default_pages(site)
    if not any("notebooks/" in p for p in pages):
        problems.append("no notebook page found under book/notebooks/ to check")
    with serve(site) as base:
        for page in pages:
            rep = probe_page(chromium, base, page)
            d = rep.data
            if d and "images" in d:
                log(f"{page}: {len(d['images'])} image(s), {d['mjx']} MathJax formula(s) of "
                    f"{d['mathNodes']} math node(s), MathJax {d['mathjax']}, {_font_summary(d['fonts'])}, "
                    f"{len(rep.problems)} problem(s)")
            problems += rep.problems
            if d and "images" in d:
                problems += check_auc_axes(site, page, d["images"])
            png = shots / (Path(page).stem + ".png")
            height = min(max(int(d.get("height") or 2000), 800), 16000) if d else 2000
            try:
                screenshot(chromium, base + page, png, window=f"1280,{height}")  # the full page
                log(f"  screenshot: {png}")
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                problems.append(f"{page}: screenshot failed: {e}")
    method = [p for p in pages if p.endswith("method.html")]
    if method:
        file_problems = check_file_url(chromium, site / method[0])
        log(f"file:// {method[0]}: {len(file_problems)} problem(s)")
        problems += file_problems
        try:
            png = screenshot(chromium, (site / method[0]).as_uri(), shots / "method-file-url.png")
            log(f"  screenshot: {png}")
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            problems.append(f"file:// {method[0]}: screenshot failed: {e}")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--html", default=str(REPO / "_build" / "html"), help="the built site")
    ap.add_argument("--shots", default=None, help="screenshot folder (default: _build/screenshots)")
    ap.add_argument("--page", action="append", help="page to open, relative to the site (repeatable)")
    a = ap.parse_args(argv)
    problems = check_book(a.html, a.shots, a.page)
    for p in problems:
        print("PROBLEM:", p, file=sys.stderr)
    print("book check:", "OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""Read the built book in a real browser (headless Chromium), the way its readers see it.

    python tools/browser_check.py _build/html                 # every page at 1366x900 and 390x844, every deck
    python tools/browser_check.py _build/html --pages 'book/06*' --no-slides --shots /tmp/shots

Every page of the build (not ``_static``, ``_sources``, ``slides``) is loaded at a laptop width
(1366x900) and a phone width (390x844), every slide deck of ``slides/`` at 1280x720, from a local
HTTP server; every request for anything not on that server is blocked (and is a problem: the
build must be readable offline, see tools/offline.py). Before measuring, every ``<details>`` is
opened and MathJax has finished. One line per problem, then a summary. Rules:

* ``page-error``, ``console-error``: an uncaught exception or a console error message;
  ``network``: a request for a resource on another host; ``missing-file``: a local 4xx/5xx.
* ``mathjax-error``: a MathJax error box, or math left as raw TeX (never typeset).
* ``wide-equation`` (laptop): a display equation wider than its column or partly under its equation
  number. ``cut-equation`` (phone): a wider-than-column equation is fine when it scrolls in its own
  box; it is a problem when it is cut off (no scroll box, or clipped) or under its number.
* ``small-figure-text`` (laptop): the smallest text of a figure, at the size the page shows it,
  under ``--min-px`` CSS pixels (default 9). The size comes from the record that
  tools/figure_audit.py stores in every PNG the build draws (font size in points, dpi), scaled by
  displayed width / PNG width; ``unaudited-figure``: a figure in a cell output without that record.
  On a phone figures shrink with the screen (readers zoom): the smallest size there is reported
  in the summary, not as a problem.
* ``raw-tex-figure``: TeX-style ``_``/``^`` outside mathtext in a figure's text (from the same record,
  which reads every Text artist where the figure is made); ``raw-tex-caption`` the same in a caption.
* ``no-alt``: an image or animation player frame without alt text (or with nbconvert's placeholder).
* ``wide-output`` (laptop): a printed output (``<pre>``) wider than its column.
* ``widget``: an ipywidgets/tqdm widget view left in a static page.
* ``tall-slide``: a slide whose content is taller than its frame.
"""
from __future__ import annotations

import argparse
import base64
import fnmatch
import functools
import http.server
import os
import re
import shutil
import sys
import threading
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import figure_audit  # noqa: E402

LAPTOP, PHONE, SLIDE = (1366, 900), (390, 844), (1280, 720)
MIN_PX = 9.0
NBCONVERT_ALT = "No description has been provided for this image"
SKIP_DIRS = ("_static", "_sources", "_images", "slides", "reports", "_sphinx_design_static")


class BrowserMissing(RuntimeError):
    pass


PlaywrightError = Exception   # playwright's Error once a Browser is made


@dataclass
class Problem:
    page: str
    where: str     # "1366", "390" or "slide 3/1"
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.page} @{self.where}: {self.rule}: {self.detail}"


@dataclass
class Summary:
    pages: int = 0
    views: int = 0
    equations: int = 0
    figures: int = 0
    min_px: dict = field(default_factory=dict)     # width -> (px, page, text)
    decks: int = 0
    slides: int = 0
    blocked: int = 0

    def line(self, problems: list[Problem]) -> str:
        small = ", ".join(f"{px:.1f} px at {w} ({page}: {text!r})" for w, (px, page, text) in sorted(
            self.min_px.items(), key=lambda kv: -int(kv[0])))
        counts = Counter(p.rule for p in problems)
        rules = ", ".join(f"{r} {n}" for r, n in sorted(counts.items())) or "none"
        return (f"pages {self.pages} ({self.views} page views), display equations checked {self.equations} (at each width), "
                f"figures {self.figures} (smallest figure text {small or 'n/a'}), slides checked {self.slides} "
                f"in {self.decks} decks, network requests blocked {self.blocked}; "
                f"problems {len(problems)}: {rules}")


# --------------------------------------------------------------------------------------------
# what the page reports (run in the browser)
# --------------------------------------------------------------------------------------------
MEASURE = r"""
() => {
  const r = (el) => el.getBoundingClientRect();
  const text = (el, n) => (el.textContent || '').replace(/\s+/g, ' ').trim().slice(0, n || 80);
  const out = {equations: [], math_errors: [], untypeset: [], images: [], pres: [], widgets: [],
               captions: [], page_width: document.documentElement.scrollWidth, inner_width: window.innerWidth};
  // display equations (Sphinx: div.math with MathJax 3's mjx-container and a span.eqno)
  for (const box of document.querySelectorAll('div.math')) {
    const cont = box.querySelector('mjx-container');
    const eqno = box.querySelector('.eqno');
    const rec = {id: box.id || '', label: eqno ? text(eqno).replace(/[#¶]/g, '').trim() : '', tex: text(box, 60)};
    if (!cont) { out.untypeset.push(rec.tex); continue; }
    const b = r(box);
    if (b.width === 0) continue;
    const math = cont.querySelector('mjx-math') || cont;
    const m = r(math);
    let scroller = null, clipper = null;
    for (let el = math.parentElement; el && el !== box.parentElement; el = el.parentElement) {
      const ox = getComputedStyle(el).overflowX;
      if (ox === 'auto' || ox === 'scroll') { scroller = el; break; }
      if (ox === 'hidden' || ox === 'clip') { clipper = el; break; }
    }
    let vl = m.left, vr = m.right;
    const port = scroller || clipper;
    if (port) { const p = r(port); vl = Math.max(vl, p.left); vr = Math.min(vr, p.right); }
    rec.math_w = Math.round(m.width); rec.col_w = Math.round(b.width);
    rec.overflow = m.left < b.left - 1 || m.right > b.right + 1;
    rec.scrolls = !!scroller && scroller.scrollWidth > scroller.clientWidth + 1;
    rec.clipped = !!clipper && clipper.scrollWidth > clipper.clientWidth + 1;
    rec.covered = false;
    if (eqno) {
      const e = r(eqno);
      rec.covered = e.width > 0 && vl < e.left - 1 + e.width && vr > e.left + 1 && m.top < e.bottom - 1 && m.bottom > e.top + 1;
    }
    out.equations.push(rec);
  }
  // MathJax errors (3: mjx-merror; 2: .MathJax_Error / merror) and inline math never typeset
  for (const el of document.querySelectorAll('mjx-merror, [data-mjx-error], .MathJax_Error, merror'))
    out.math_errors.push(el.getAttribute('data-mjx-error') || el.getAttribute('title') || text(el));
  for (const el of document.querySelectorAll('span.math'))
    if (!el.querySelector('mjx-container') && /\\\(|\$/.test(el.textContent)) out.untypeset.push(text(el, 60));
  // images and animation player frames
  for (const img of document.querySelectorAll('img')) {
    const b = r(img);
    if (b.width === 0 || getComputedStyle(img).visibility === 'hidden') continue;
    out.images.push({src: img.currentSrc || img.src, alt: (img.getAttribute('alt') || '').trim(),
                     role: img.getAttribute('role') || '', aria_hidden: img.getAttribute('aria-hidden') || '',
                     id: img.id || '', natural_w: img.naturalWidth, shown_w: b.width,
                     player: img.id.startsWith('_anim_img'),
                     output: !!img.closest('.cell_output, .output, .jp-OutputArea-output')});
  }
  // printed outputs
  for (const pre of document.querySelectorAll('.cell_output pre, div.output pre, .jp-OutputArea-output pre')) {
    if (r(pre).width === 0 || pre.scrollWidth <= pre.clientWidth + 1) continue;
    const lines = pre.textContent.split('\n');
    const longest = lines.reduce((a, b) => b.length > a.length ? b : a, '');
    out.pres.push({sw: pre.scrollWidth, cw: pre.clientWidth, line: longest.trim().slice(0, 70)});
  }
  // widget views left in a static page (what model they show, from the embedded widget state)
  const models = {};
  for (const s of document.querySelectorAll('script[type="application/vnd.jupyter.widget-state+json"]')) {
    try { const st = JSON.parse(s.textContent).state || {};
          for (const k in st) models[k] = st[k].model_name; } catch (e) {}
  }
  for (const s of document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')) {
    let id = ''; try { id = JSON.parse(s.textContent).model_id; } catch (e) {}
    out.widgets.push(models[id] || 'unknown model');
  }
  for (const el of document.querySelectorAll('.jupyter-widgets:not(script), .widget-hprogress, .jp-OutputArea-output .progress'))
    if (!el.parentElement.closest('.jupyter-widgets')) out.widgets.push((el.className || '').toString().slice(0, 60));
  // captions: TeX-style _ or ^ outside typeset math
  for (const cap of document.querySelectorAll('figcaption')) {
    const c = cap.cloneNode(true);
    c.querySelectorAll('mjx-container, .math, code, .caption-number').forEach(e => e.remove());
    const t = text(c, 400);
    if (/[\w)\]}]_[\w{(\\]|\^/.test(t)) out.captions.push(t.slice(0, 100));
  }
  return out;
}
"""

READY = r"""
async () => {
  const wait = (ms) => new Promise(res => setTimeout(res, ms));
  for (let i = 0; i < 100 && document.querySelector('.math, span.math') &&
       !(window.MathJax && MathJax.startup && MathJax.startup.promise); i++) await wait(100);
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  document.querySelectorAll('details').forEach(d => d.open = true);
  document.querySelectorAll('.toggle-hidden').forEach(e => e.classList.remove('toggle-hidden'));
  await new Promise(res => requestAnimationFrame(() => requestAnimationFrame(res)));
}
"""

SLIDES = r"""
async () => {
  const wait = (ms) => new Promise(res => setTimeout(res, ms));
  // nbconvert's decks load reveal.js through require.js: then it is a module, not window.Reveal
  const find = () => {
    if (window.Reveal && window.Reveal.getSlides) return window.Reveal;
    const defined = window.requirejs && requirejs.s && requirejs.s.contexts._.defined || {};
    for (const k in defined) if (defined[k] && defined[k].getSlides && /reveal/.test(k)) return defined[k];
    return null;
  };
  let Reveal = find();
  for (let i = 0; i < 150 && !(Reveal && Reveal.isReady()); i++) { await wait(100); Reveal = find(); }
  if (!(Reveal && Reveal.isReady())) return {error: 'reveal.js did not start'};
  if (window.MathJax && MathJax.Hub) await new Promise(res => MathJax.Hub.Queue(res));
  const h = Reveal.getConfig().height, out = [];
  for (const sec of Reveal.getSlides()) {
    const idx = Reveal.getIndices(sec);
    Reveal.slide(idx.h, idx.v);
    await new Promise(res => requestAnimationFrame(() => requestAnimationFrame(res)));
    // content height: the lowest bottom edge of the slide's children, in reveal's own pixels
    const top = sec.getBoundingClientRect().top, scale = Reveal.getScale ? Reveal.getScale() : 1;
    let bottom = 0;
    for (const ch of sec.children) bottom = Math.max(bottom, ch.getBoundingClientRect().bottom);
    const content = Math.max(sec.scrollHeight, (bottom - top) / scale);
    const title = sec.querySelector('h1, h2, h3');
    out.push({h: idx.h, v: idx.v || 0, height: Math.round(content), frame: h,
              title: title ? title.textContent.replace(/[¶#]/g, '').trim().slice(0, 60) : ''});
  }
  return {slides: out};
}
"""


# --------------------------------------------------------------------------------------------
# the browser
# --------------------------------------------------------------------------------------------
def chromium_path() -> str:
    for cand in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                 shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if cand and Path(cand).exists():
            return cand
    raise BrowserMissing("no Chromium found (looked at $CHROMIUM, /usr/bin/chromium, chromium on PATH): "
                         "apt-get install -y chromium")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class Server:
    """The build served on 127.0.0.1 (a free port), in a thread."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        handler = functools.partial(_Quiet, directory=str(self.root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, rel: str) -> str:
        return self.base + urllib.parse.quote(rel)

    def file(self, url: str) -> Path | None:
        if not url.startswith(self.base):
            return None
        return self.root / urllib.parse.unquote(urllib.parse.urlsplit(url).path.lstrip("/"))

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Browser:
    """Headless Chromium through playwright, every non-local request blocked (and recorded)."""

    def __init__(self):
        try:
            from playwright.sync_api import sync_playwright
        except ImportError as err:
            raise BrowserMissing("the Python package playwright is not installed: pip install -r requirements.txt") from err
        global PlaywrightError
        from playwright.sync_api import Error as PlaywrightError
        exe = chromium_path()
        self._pw = sync_playwright().start()
        try:
            self.browser = self._pw.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        except Exception as err:  # noqa: BLE001 - any launch failure is one line for the reader
            self._pw.stop()
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise BrowserMissing(f"cannot launch Chromium at {exe}: {first}") from err

    def close(self):
        self.browser.close()
        self._pw.stop()

    def visit(self, url: str, viewport: tuple[int, int], script: str, local: str,
              shot: Path | None = None) -> tuple[dict, list[tuple[str, str]]]:
        """Load ``url``, run ``READY`` then ``script``; returns its result and the (rule, detail)
        events seen: console errors, page errors, blocked requests, local files missing."""
        events: list[tuple[str, str]] = []
        ctx = self.browser.new_context(viewport={"width": viewport[0], "height": viewport[1]},
                                       device_scale_factor=1)

        def route(r):
            u = r.request.url
            if u.startswith(local) or u.startswith(("data:", "blob:", "about:")):
                r.continue_()
            else:
                events.append(("network", f"blocked request for {u[:120]}"))
                r.abort()

        ctx.route("**/*", route)
        page = ctx.new_page()
        page.on("console", lambda m: m.type == "error" and not m.text.startswith("Failed to load resource")
                and events.append(("console-error", m.text[:300])))
        page.on("pageerror", lambda e: events.append(("page-error", str(e)[:300])))
        page.on("response", lambda resp: resp.status >= 400 and resp.url.startswith(local)
                and events.append(("missing-file", f"{resp.status} for {resp.url[len(local):][:120]}")))
        try:
            page.goto(url, wait_until="load", timeout=60_000)
            page.evaluate(READY)
            result = page.evaluate(script)
        except PlaywrightError as err:
            events.append(("page-error", f"could not be measured: {str(err).splitlines()[0][:200]}"))
            result = None
            if shot and result is not None:
                shot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shot), full_page=True)
        finally:
            ctx.close()
        return result, events


# --------------------------------------------------------------------------------------------
# rules
# --------------------------------------------------------------------------------------------
def png_bytes(src: str, server: Server) -> bytes | None:
    if src.startswith("data:image/png;base64,"):
        return base64.b64decode(src.split(",", 1)[1])
    path = server.file(src)
    if path and path.suffix.lower() == ".png" and path.exists():
        return path.read_bytes()
    return None


_FRAME = re.compile(r'frames\[\d+\] = "data:image/png;base64,((?:[A-Za-z0-9+/=]|\\\n)+)"')


def player_records(html: str) -> list[dict]:
    """The figure records of every frame of every animation player embedded in a page's source."""
    out = []
    for m in _FRAME.finditer(html):
        rec = figure_audit.read_record(base64.b64decode(m.group(1).replace("\\\n", "")))
        if rec:
            out.append(rec)
    return out


def page_problems(rel: str, width: int, m: dict, server: Server, summary: Summary, min_px: float,
                  records: list[dict] | None = None) -> list[Problem]:
    """Turn one page view's measurements into problems (and fill in the summary)."""
    laptop = width >= 1000
    where = str(width)
    out = []

    def add(rule, detail):
        out.append(Problem(rel, where, rule, detail))

    for e in m["math_errors"]:
        add("mathjax-error", e[:160])
    for t in m["untypeset"]:
        add("mathjax-error", f"math not typeset, shown as raw TeX: {t}")
    for eq in m["equations"]:
        summary.equations += laptop
        name = f"equation {eq['label']}" if eq["label"] else f"equation {eq['tex'][:40]!r}"
        size = f"{eq['math_w']} px wide in a {eq['col_w']} px column"
        if laptop and (eq["overflow"] or eq["covered"] or eq["scrolls"] or eq["clipped"]):
            what = ("wider than the column" if eq["overflow"] else "partly under its equation number" if eq["covered"]
                    else "wider than the room its equation number leaves (it scrolls)")
            add("wide-equation", f"{name} {what}: {size}")
        elif not laptop and (eq["covered"] or (eq["overflow"] and not eq["scrolls"]) or eq["clipped"]):
            what = ("cut off (clipped)" if eq["clipped"] else "cut off (no scroll box)" if eq["overflow"] and not eq["scrolls"]
                    else "partly under its equation number")
            add("cut-equation", f"{name} {what}: {size}")
    seen_raw = set()
    for img in m["images"]:
        label = "animation player frame" if img["player"] else "image"
        src_name = img["src"][:60] if not img["src"].startswith("data:") else "embedded PNG"
        if img["role"] != "presentation" and img["aria_hidden"] != "true" and (
                not img["alt"] or img["alt"] == NBCONVERT_ALT):
            add("no-alt", f"{label} {img['id'] or src_name} has no alt text")
        if not (img["output"] or img["player"]):
            continue
        png = png_bytes(img["src"], server)
        rec = figure_audit.read_record(png) if png else None
        if rec is None:
            if png is not None:
                add("unaudited-figure", f"{label} {src_name} carries no figure record (built without "
                                        "tools/figure_audit.py, or from an older execution cache)")
            continue
        summary.figures += laptop
        for s in rec.get("raw_tex", []):
            if s not in seen_raw:
                seen_raw.add(s)
                add("raw-tex-figure", f"{label} text {s!r} shows TeX-style _/^ (use mathtext: $...$)")
        if "min_font_pt" not in rec or not img["natural_w"]:
            continue
        px = rec["min_font_pt"] * rec["dpi"] / 72 * img["shown_w"] / img["natural_w"]
        best = summary.min_px.get(width)
        if best is None or px < best[0]:
            summary.min_px[width] = (round(px, 1), rel, rec.get("smallest", ""))
        if laptop and px < min_px:
            add("small-figure-text", f"{label} ({rec['width_in']} in wide, shown {img['shown_w']:.0f} px): "
                                     f"{rec.get('smallest', '')!r} is {px:.1f} px ({rec['min_font_pt']} pt), "
                                     f"under {min_px:g}")
    if laptop:
        for rec in records or []:
            for s in rec.get("raw_tex", []):
                if s not in seen_raw:
                    seen_raw.add(s)
                    add("raw-tex-figure", f"animation frame text {s!r} shows TeX-style _/^ (use mathtext: $...$)")
        for p in m["pres"]:
            add("wide-output", f"printed output {p['sw']} px wide in a {p['cw']} px box: {p['line']!r}")
        for c in m["captions"]:
            add("raw-tex-caption", f"caption shows TeX-style _/^: {c!r}")
    for w in m["widgets"]:
        add("widget", f"widget view ({w}) left in a static page")
    if not laptop and m["page_width"] > m["inner_width"] + 1:
        add("page-scroll", f"the page is {m['page_width']} px wide on a {m['inner_width']} px screen")
    return out


def slide_problems(rel: str, result: dict) -> list[Problem]:
    if "error" in result:
        return [Problem(rel, str(SLIDE[0]), "page-error", result["error"])]
    return [Problem(rel, f"slide {s['h']}/{s['v']}", "tall-slide",
                    f"{s['title']!r} is {s['height']} px tall in a {s['frame']} px frame")
            for s in result["slides"] if s["height"] > s["frame"] + 2]


# --------------------------------------------------------------------------------------------
_REDIRECT = re.compile(r"<meta\s+http-equiv=[\"']refresh[\"']", re.I)


def pages_of(html: Path, pattern: str | None = None) -> list[str]:
    """The pages of the build (a redirect page, like jupyter-book's root index.html, is not one)."""
    out = []
    for p in sorted(Path(html).rglob("*.html")):
        rel = p.relative_to(html).as_posix()
        if rel.split("/")[0] in SKIP_DIRS or (pattern and not fnmatch.fnmatch(rel, pattern)):
            continue
        if _REDIRECT.search(p.read_text(encoding="utf-8", errors="replace")[:3000]):
            continue
        out.append(rel)
    return out


def check(html: Path, pages: list[str] | None = None, decks: list[str] | None = None,
          widths=(LAPTOP, PHONE), min_px: float = MIN_PX, shots: Path | None = None,
          browser: Browser | None = None, progress: bool = False) -> tuple[list[Problem], Summary]:
    """Check the build at ``html``: ``pages`` (default: every page) and ``decks`` (default: every
    ``slides/*.slides.html``). Raises BrowserMissing when Chromium cannot be launched."""
    html = Path(html)
    pages = pages_of(html) if pages is None else pages
    decks = sorted(p.relative_to(html).as_posix() for p in (html / "slides").glob("*.html")) if decks is None else decks
    own = browser is None
    browser = browser or Browser()
    server = Server(html)
    problems: list[Problem] = []
    summary = Summary(pages=len(pages), decks=len(decks))
    try:
        for rel in pages:
            records = player_records((html / rel).read_text(encoding="utf-8", errors="replace"))
            for vp in widths:
                shot = shots / f"{Path(rel).stem}_{vp[0]}.png" if shots else None
                m, events = browser.visit(server.url(rel), vp, MEASURE, server.base, shot)
                summary.views += 1
                problems += [Problem(rel, str(vp[0]), r, d) for r, d in dict.fromkeys(events)]
                summary.blocked += sum(r == "network" for r, _ in events)
                if m is not None:
                    problems += page_problems(rel, vp[0], m, server, summary, min_px, records)
            if progress:
                print(f"checked {rel}", file=sys.stderr, flush=True)
        for rel in decks:
            result, events = browser.visit(server.url(rel), SLIDE, SLIDES, server.base)
            problems += [Problem(rel, str(SLIDE[0]), r, d) for r, d in dict.fromkeys(events)]
            summary.blocked += sum(r == "network" for r, _ in events)
            if result is not None:
                summary.slides += len(result.get("slides", []))
                problems += slide_problems(rel, result)
            if progress:
                print(f"checked {rel}", file=sys.stderr, flush=True)
    finally:
        server.close()
        if own:
            browser.close()
    # a defect seen at both widths (an error, a missing alt text...) is one problem: keep the first
    seen, unique = set(), []
    for p in problems:
        if (p.page, p.rule, p.detail) not in seen:
            seen.add((p.page, p.rule, p.detail))
            unique.append(p)
    return unique, summary


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("html", type=Path, nargs="?", default=Path("_build/html"))
    ap.add_argument("--pages", help="only pages matching this glob, e.g. 'book/06*'")
    ap.add_argument("--no-slides", action="store_true")
    ap.add_argument("--min-px", type=float, default=MIN_PX, help="smallest figure text in CSS px (default 9)")
    ap.add_argument("--shots", type=Path, help="save a full-page screenshot of every page view here")
    args = ap.parse_args(argv)
    if not (args.html / "index.html").exists():
        print(f"error: {args.html} has no index.html: build the book first (bash tools/build_book.sh)")
        return 2
    try:
        problems, summary = check(args.html, pages_of(args.html, args.pages), [] if args.no_slides else None,
                                  min_px=args.min_px, shots=args.shots, progress=True)
    except BrowserMissing as err:
        print(f"error: {err}")
        return 2
    for p in problems:
        print(p)
    print(summary.line(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

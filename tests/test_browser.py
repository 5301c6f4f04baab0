"""The book in a real browser (tools/browser_check.py, headless Chromium) and the figure audit
behind its figure rules (tools/figure_audit.py).

Each rule is shown to fire on a small synthetic page with its defect (and not on a clean one);
the slow test reads the session's one offline build of the book (conftest.py's ``rendered_book``)
with every non-local request blocked. A browser that cannot be launched is a failure, never a skip.
"""
import base64
import io
import sys
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import browser_check as bc  # noqa: E402
import figure_audit as fa  # noqa: E402
import offline  # noqa: E402


# --------------------------------------------------------------------------------------------
# figure audit: where the text is made
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,raw", [
    ("tau_s = tau_c", True), ("z^2", True), ("X_HAM", True),
    (r"$\tau_s = \tau_c$", False), (r"energy $E(z^2)$ per unit", False), (r"cost \$5_000", True),
    ("a $x_1 and y_2", True),            # one '$': matplotlib shows it all as plain text
    (r"$x_1$ and y_2", True), ("plain words", False), (r"$\mathdefault{10^{2}}$", False),
])
def test_raw_tex_rule(text, raw):
    assert fa.raw_tex(text) is raw


def _png(fig, **kw) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", **kw)
    plt.close(fig)
    return buf.getvalue()


@pytest.fixture
def audited():
    fa.install()
    yield


def test_audit_reads_every_text_artist_that_draws(audited):
    fig, (a, b) = plt.subplots(1, 2, figsize=(6, 2.5))
    a.plot([0, 1], label="tau_v")
    a.legend(fontsize=7)
    a.set_xlabel(r"$\tau_s$ (ms)")
    a.set_title("ok title")
    b.annotate("z^2 here", (0.5, 0.5), fontsize=9)
    b.text(0.1, 0.1, "hidden_one", visible=False)
    b.set_ylabel("")
    fig.suptitle("sup_title", fontsize=12)
    a.set_xlim(0, 1)
    rec = fa.read_record(_png(fig, dpi=50, bbox_inches="tight"))
    assert set(rec["raw_tex"]) == {"tau_v", "z^2 here", "sup_title"}   # not the hidden one
    assert rec["min_font_pt"] == 7.0 and rec["smallest"] == "tau_v"
    assert rec["dpi"] == 50 and rec["width_in"] == 6.0 and rec["png_width_px"] < 300   # cropped


def test_every_animation_frame_carries_a_record(audited):
    from matplotlib import animation
    fig, ax = plt.subplots(figsize=(3, 2))
    line, = ax.plot([], [])
    ax.set_title("step_k")
    anim = animation.FuncAnimation(fig, lambda i: (line.set_data([0, i], [0, i]), line)[1:], frames=3)
    records = bc.player_records(anim.to_jshtml())
    plt.close(fig)
    assert len(records) >= 3 and all(r["raw_tex"] == ["step_k"] for r in records)


# --------------------------------------------------------------------------------------------
# the browser rules on synthetic pages
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    try:
        b = bc.Browser()
    except bc.BrowserMissing as err:
        pytest.fail(f"the browser test needs Chromium: {err}", pytrace=False)
    yield b
    b.close()


def _figure_png(width_in: float, font_pt: float, label: str = "ok") -> str:
    fa.install()
    fig, ax = plt.subplots(figsize=(width_in, 2))
    ax.plot([0, 1])
    ax.set_xlabel(label, fontsize=font_pt)
    ax.tick_params(labelsize=font_pt)
    return base64.b64encode(_png(fig, dpi=100)).decode()


def _page(body: str, head: str = "") -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'>{head}<style>body{{margin:0}} "
            f"article{{width:700px;max-width:calc(100vw - 20px);margin:0 10px}} pre{{overflow-x:auto}}"
            f"</style></head><body><article class='bd-article'>{body}</article></body></html>")


def _equation(width_px: int, overflow: str = "auto", label: str = "1.1") -> str:
    """What Sphinx + MathJax 3 make of a display equation, with a formula ``width_px`` wide."""
    eqno = f"<span class='eqno' style='float:right'>({label})</span>" if label else ""
    return (f"<div class='math' id='eq-{label}'>{eqno}<mjx-container display='true' "
            f"style='display:block;overflow-x:{overflow};text-align:center'><mjx-math "
            f"style='display:inline-block;width:{width_px}px;height:20px'></mjx-math></mjx-container></div>")


PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
CLEAN = _page(_equation(300) + "<div class='cell_output'><pre>short line</pre>"
              "<img alt='a curve' src='data:image/png;base64,{png}' style='max-width:100%'></div>"
              "<figure><figcaption>The energy $E$ over time</figcaption></figure>")

DEFECTS = {
    "wide-equation": _equation(1500),
    "cut-equation": _equation(1500, overflow="hidden"),
    "wide-output": "<div class='cell_output'><pre>" + "0.123 " * 200 + "</pre></div>",
    "no-alt": "<img src='data:image/png;base64,{png}'>",
    "console-error": "<script>console.error('THEBE_JS_URL declared twice')</script>",
    "page-error": "<script>undefinedFunction()</script>",
    "mathjax-error": "<mjx-merror data-mjx-error='Undefined control sequence \\foo'>x</mjx-merror>"
                     "<span class='math'>\\(\\tau/4\\)</span>",
    "widget": "<script type='application/vnd.jupyter.widget-view+json'>{\"model_id\": \"m1\", "
              "\"version_major\": 2}</script><script type='application/vnd.jupyter.widget-state+json'>"
              "{\"state\": {\"m1\": {\"model_name\": \"FloatProgressModel\"}}}</script>",
    "network": "<img alt='remote' src='https://example.org/remote.png'>",
    "missing-file": "<img alt='gone' src='nowhere.png'>",
    "raw-tex-caption": "<figure><figcaption>Recall against tau_s</figcaption></figure>",
    "small-figure-text": "<div class='cell_output'><img alt='wide' src='data:image/png;base64,{small}' "
                         "style='width:680px'></div>",
    "raw-tex-figure": "<div class='cell_output'><img alt='raw' src='data:image/png;base64,{raw}'></div>",
    "unaudited-figure": "<div class='cell_output'><img alt='old' src='data:image/png;base64,{pixel}'></div>",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    pngs = {"png": _figure_png(6, 10), "small": _figure_png(14, 8), "raw": _figure_png(6, 10, "tau_s"),
            "pixel": PIXEL}   # a PNG drawn without the audit
    (root / "index.html").write_text(CLEAN.replace("{png}", pngs["png"]))
    for rule, body in DEFECTS.items():
        for key, png in pngs.items():
            body = body.replace("{" + key + "}", png)
        (root / f"{rule}.html").write_text(_page(body))
    slides = root / "slides"
    slides.mkdir()
    (slides / "deck.slides.html").write_text(DECK)
    return root


#: a stand-in for reveal.js (the API the checker uses) with a short and a too-tall slide
DECK = """<!doctype html><html><body><div class='reveal'><div class='slides'>
<section style='height:700px'><h2>Short</h2><p>one line</p></section>
<section style='height:700px;overflow-y:auto'><h2>Long summary</h2><div style='height:1100px'>many lines</div></section>
</div></div><script>
const secs = [...document.querySelectorAll('section')];
window.Reveal = {isReady: () => true, getConfig: () => ({height: 700}), getSlides: () => secs,
  getIndices: (s) => ({h: secs.indexOf(s), v: 0}), slide: () => {}, getScale: () => 1};
</script></body></html>"""


def _rules(site, browser, name, widths=(bc.LAPTOP, bc.PHONE)):
    problems, summary = bc.check(site, pages=[name], decks=[], widths=widths, browser=browser)
    return {p.rule for p in problems}, problems, summary


def test_clean_page_has_no_problems(site, browser):
    rules, problems, summary = _rules(site, browser, "index.html")
    assert not problems, "\n".join(map(str, problems))
    assert summary.equations == 1 and summary.figures == 1 and summary.min_px[1366][0] >= 9


@pytest.mark.parametrize("rule", sorted(DEFECTS))
def test_each_rule_fires_on_its_defect(site, browser, rule):
    widths = (bc.PHONE,) if rule == "cut-equation" else (bc.LAPTOP,)   # where the rule applies
    rules, problems, _ = _rules(site, browser, f"{rule}.html", widths)
    assert rule in rules, f"{rule} did not fire; found: " + "; ".join(map(str, problems))


def test_wide_equation_may_scroll_on_a_phone_never_be_cut_or_covered(site, browser, tmp_path):
    _, problems, _ = _rules(site, browser, "wide-equation.html")
    assert {(p.where, p.rule) for p in problems} == {("1366", "wide-equation")}   # scrolls in its box at 390
    _, problems, _ = _rules(site, browser, "cut-equation.html", widths=(bc.PHONE,))
    assert [p.rule for p in problems] == ["cut-equation"] and "clipped" in problems[0].detail
    # a formula that fits but runs under its (absolutely placed) number: covered at both widths
    covered = _page("<div class='math' style='position:relative'><span class='eqno' style='position:absolute;"
                    "right:0;top:0'>(2.1)</span><mjx-container display='true' style='display:block;"
                    "text-align:right'><mjx-math style='display:inline-block;width:200px;height:20px'>"
                    "</mjx-math></mjx-container></div>")
    (site / "covered.html").write_text(covered)
    _, problems, _ = _rules(site, browser, "covered.html")
    assert sorted(p.rule for p in problems) == ["cut-equation", "wide-equation"]
    assert all("under its equation number" in p.detail for p in problems)


def test_small_figure_text_is_measured_at_the_page_scale(site, browser):
    _, problems, summary = _rules(site, browser, "small-figure-text.html", widths=(bc.LAPTOP,))
    # 8 pt at 100 dpi = 11.1 px in the PNG, a 1400-px-wide PNG shown 680 px wide: 5.4 px
    (p,) = [p for p in problems if p.rule == "small-figure-text"]
    assert "5.4 px" in p.detail and summary.min_px[1366][0] == pytest.approx(5.4, abs=0.1)


def test_tall_slide(site, browser):
    problems, summary = bc.check(site, pages=[], decks=["slides/deck.slides.html"], browser=browser)
    assert summary.slides == 2
    assert [(p.rule, p.where) for p in problems] == [("tall-slide", "slide 1/0")]


def test_a_browser_that_cannot_start_fails_in_one_line(tmp_path, site):
    import os
    import subprocess
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "browser_check.py"), str(site)], text=True,
                          capture_output=True, env={**os.environ, "CHROMIUM": str(fake)}, timeout=120)
    assert proc.returncode == 2 and proc.stdout.count("\n") == 1, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"error: cannot launch Chromium at {fake}")


# --------------------------------------------------------------------------------------------
# offline build: URL rewriting
# --------------------------------------------------------------------------------------------
def test_offline_rewrites_every_cdn_url_it_knows():
    page = ('<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>'
            '<link rel="stylesheet"\nhref="https://maxcdn.bootstrapcdn.com/font-awesome/4.4.0/css/font-awesome.min.css">'
            '<script src="https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js?config=TeX-AMS_CHTML-full,Safe">'
            '</script><link rel="stylesheet" href="https://unpkg.com/reveal.js@4.0.2/dist/reveal.css">'
            '<script src="https://cdnjs.cloudflare.com/ajax/libs/require.js/2.1.10/require.min.js"></script>'
            '<a href="https://colab.research.google.com/x">Colab</a>')
    new = offline.rewrite(page, "../_static/offline/")
    assert offline.remote_resources(page) and not offline.remote_resources(new)
    assert "../_static/offline/mathjax2/MathJax.js?config=TeX-AMS_CHTML-full,Safe" in new
    assert "https://colab.research.google.com/x" in new     # a link is not a resource
    assert offline.remote_resources('<img src="https://example.org/a.png">') == ["https://example.org/a.png"]


# --------------------------------------------------------------------------------------------
# the book itself
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_rendered_book_reads_well_in_a_browser(rendered_book, browser):
    # the module's one browser: a second sync Playwright in the same thread refuses to start
    problems, summary = bc.check(rendered_book, browser=browser)
    print(summary.line(problems))
    assert summary.pages >= 15 and summary.equations > 50 and summary.slides > 100, summary.line(problems)
    assert not problems, "\n".join(map(str, problems)) + "\n" + summary.line(problems)

"""One short reveal.js slide deck per chapter, made from the executed chapter itself.

    python tools/slides.py                          # every chapter: _build/jupyter_execute/book -> _build/html/slides
    python tools/slides.py 06_paramixer             # one chapter (name or number)
    python tools/slides.py --npm-dir /tmp/npm       # decks that load reveal.js, MathJax and require.js
                                                    # from an `npm install` there (to look at them offline)
    python tools/slides.py --guide-table            # the instructor's guide's table of notebook and deck links

``jupyter-book build`` leaves every executed chapter in ``_build/jupyter_execute/book/``;
``tools/build_book.sh`` runs this script right after the build. Each deck
(``_build/html/slides/NN_x.slides.html``, published at ``deck_url(page)``) has

* a title slide: the chapter's number and title, its learning goals (from "Chapter at a glance")
  and links to the chapter page and its Colab notebook;
* one slide per section (``##`` heading): its first sentence and its display equations; each
  figure of the section on a sub-slide (the caption under a cell's last figure); each "Check your
  understanding" question on a sub-slide (answer folded);
* the Summary, and the titles of the Exercises (solutions stay in the book).

Code inputs are hidden. A cell tagged ``slide`` is forced in whole (a Markdown cell with its
text, a code cell with all its outputs); a cell tagged ``no-slide`` is left out. MyST is turned
into plain Markdown + LaTeX by ``tools/colab_export.py``'s ``Converter`` (the one place that knows
the book's roles and directives), and the deck is written by nbconvert's ``SlidesExporter``.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import colab_export as cx  # noqa: E402
import nb as nbtool  # noqa: E402

EXECUTED = ROOT / "_build" / "jupyter_execute"
OUT = ROOT / "_build" / "html" / "slides"
SLIDE_TAG, NO_SLIDE_TAG = "slide", "no-slide"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")
GOALS = re.compile(r"\*\*Learning goals\.?\*\*", re.I)
CHECK_TITLE = "Check your understanding"
#: reveal.js looks after the layout; this keeps figures and long slides inside the frame
CSS = """<style>
.reveal .slides section { text-align: left; font-size: 0.78em; }
.reveal .slides section h1, .reveal .slides section h2 { text-align: left; }
.reveal img { max-height: 58vh; max-width: 100%; }
.reveal .jp-OutputArea-output img { margin: 0 auto; display: block; }
.reveal blockquote { width: 95%; text-align: left; }
.reveal .slides section h1 { font-size: 1.7em; }
</style>
"""
#: a text slide longer than this (Markdown characters, folded answers not counted) is split at
#: block boundaries into parts no longer than it: about what the 960x700 frame holds at the
#: deck's font size (chapter 5's Summary, 1660 characters, ran 90 px past the frame)
MAX_SLIDE_CHARS = 1200


class SlideError(ValueError):
    pass


def deck_name(page: str) -> str:
    """``book/06_paramixer`` -> ``06_paramixer.slides.html``."""
    return f"{Path(page).name}.slides.html"


def deck_url(page: str) -> str:
    """Where the published site serves the deck of chapter ``page`` (absolute URL)."""
    return nbtool.pages_url() + "slides/" + deck_name(page)


def guide_table(book: cx.Book | None = None) -> str:
    """The Markdown table of ``book/instructors.md`` that links every chapter's instructor and
    student Colab notebooks and its deck; the URLs follow ``_config.yml`` (a test compares)."""
    book = book or cx.load_book()
    rows = ["| chapter | instructor notebook (with solutions) | student notebook (no solutions) | slides |",
            "|---|---|---|---|"]
    for page, _ in cx.chapters(book):
        path = Path(f"{page}.ipynb")
        label = "ch-" + path.stem[3:].replace("_", "-")
        rows.append(f"| {{numref}}`{{number}}. {{name}} <{label}>` | [Colab]({nbtool.colab_url(path)}) "
                    f"| [Colab]({nbtool.colab_url(path, student=True)}) | [deck]({deck_url(page)}) |")
    return "\n".join(rows)


# --------------------------------------------------------------------------------------------
# converted Markdown -> blocks
# --------------------------------------------------------------------------------------------
@dataclass
class Block:
    kind: str        # heading | para | math | quote | details | code
    text: str
    level: int = 0   # headings only


_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")


def blocks(markdown: str) -> list[Block]:
    """Split plain (converted) Markdown into headings, paragraphs, display equations, block
    quotes, ``<details>`` regions and code fences, in order."""
    lines = markdown.split("\n")
    out: list[Block] = []
    para: list[str] = []

    def flush():
        if para and "".join(para).strip():
            out.append(Block("para", "\n".join(para).strip("\n")))
        para.clear()

    i = 0
    while i < len(lines):
        line, stripped = lines[i], lines[i].strip()
        if cx.FENCE.match(line):
            flush()
            j, fence = i + 1, cx.FENCE.match(line).group(1)
            while j < len(lines) and not lines[j].strip().startswith(fence):
                j += 1
            out.append(Block("code", "\n".join(lines[i: j + 1])))
            i = j + 1
            continue
        if stripped.startswith("<details"):
            flush()
            j, depth = i, 0
            while j < len(lines):
                depth += lines[j].count("<details") - lines[j].count("</details>")
                if depth <= 0:
                    break
                j += 1
            out.append(Block("details", "\n".join(lines[i: j + 1])))
            i = j + 1
            continue
        if stripped.startswith(">"):
            flush()
            j = i
            while j < len(lines) and lines[j].strip().startswith(">"):
                j += 1
            out.append(Block("quote", "\n".join(lines[i:j])))
            i = j
            continue
        if stripped.startswith("$$"):
            flush()
            j = i
            if not (len(stripped) > 2 and stripped.endswith("$$")):
                j = i + 1
                while j < len(lines) and not lines[j].strip().endswith("$$"):
                    j += 1
            out.append(Block("math", "\n".join(lines[i: j + 1])))
            i = j + 1
            continue
        h = _HEADING.match(line)
        if h:
            flush()
            out.append(Block("heading", line, level=len(h.group(1))))
            i += 1
            continue
        if not stripped:
            flush()
        else:
            para.append(line)
        i += 1
    flush()
    return out


def unquote(text: str) -> str:
    return "\n".join(re.sub(r"^\s*> ?", "", line) for line in text.split("\n"))


def first_sentences(text: str, at_least: int = 90) -> str:
    """The first sentence of a paragraph (two if the first is short), never cutting inside
    ``$...$``: a sentence ends at '.', '?' or '!' followed by a space and a capital letter."""
    in_math, start = False, 0
    for i, ch in enumerate(text):
        if ch == "$":
            in_math = not in_math
        elif (not in_math and ch in ".?!" and i + 2 < len(text) and text[i + 1] in " \n"
              and (text[i + 2].isupper() or text[i + 2] in "*_[")):
            if i + 1 - start >= at_least:
                return text[: i + 1]
    return text


# --------------------------------------------------------------------------------------------
# chapter -> sections
# --------------------------------------------------------------------------------------------
@dataclass
class Section:
    heading: str                      # converted heading line, e.g. "## 6.2 Title"
    level: int
    items: list = field(default_factory=list)   # ("block", Block) | ("figure", cell, caption) | ("forced", cell)

    @property
    def title(self) -> str:
        """The heading without '#' and without its number: 'Summary'."""
        return re.sub(r"^#+\s+(\d+(\.\d+)*\.?\s+)?", "", self.heading).strip()

    def blocks(self, kind: str | None = None) -> list[Block]:
        return [it[1] for it in self.items if it[0] == "block" and (kind is None or it[1].kind == kind)]


def _tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def sections(nb: nbformat.NotebookNode, conv: cx.Converter) -> list[Section]:
    """The chapter cut at its ``#``/``##`` headings, with its Markdown converted (in order, so
    that the Converter numbers the headings as the book does) and its figures attached."""
    out: list[Section] = []
    for cell in nb.cells:
        tags = _tags(cell)
        if cell.cell_type == "markdown":
            if nbtool.BADGE_MARK in cell.source:
                continue
            text = conv.convert(cell.source)   # always: keeps the heading numbers right
            if NO_SLIDE_TAG in tags:
                continue
            if SLIDE_TAG in tags:
                if not out:
                    raise SlideError("a cell tagged 'slide' comes before the chapter's title")
                out[-1].items.append(("forced", nbformat.v4.new_markdown_cell(text)))
                continue
            for b in blocks(text):
                if b.kind == "heading" and b.level <= 2:
                    out.append(Section(b.text, b.level))
                elif out:
                    out[-1].items.append(("block", b))
        elif cell.cell_type == "code" and out and NO_SLIDE_TAG not in tags:
            if SLIDE_TAG in tags:
                out[-1].items.append(("forced", cell))
                continue
            images = [o for o in cell.get("outputs", [])
                      if o.get("output_type") in ("display_data", "execute_result")
                      and any(t in o.get("data", {}) for t in IMAGE_TYPES)]
            if images:
                fig = cx.figure_of(cell)
                caption = cx.expand_macros(conv.inline(fig["caption"]), conv.book.macros) if fig else ""
                out[-1].items.append(("figure", cell, images, caption))
    if not out or out[0].level != 1:
        raise SlideError("the chapter has no '# Title' heading before its first section")
    return out


def learning_goals(title: Section) -> str:
    """The 'Learning goals' paragraph (with its list) of the chapter's opening."""
    for b in title.blocks():
        text = unquote(b.text) if b.kind == "quote" else b.text
        m = GOALS.search(text)
        if not m:
            continue
        goals = []
        for line in text[m.start():].split("\n"):
            if goals and re.match(r"^\s*\*\*[A-Z]", line):   # the next bold lead: '**Prerequisites.**'
                break
            goals.append(line)
        return "\n".join(goals).strip()
    raise SlideError("no '**Learning goals.**' in the chapter's opening (the 'Chapter at a glance' "
                     "admonition): the title slide needs them")


# --------------------------------------------------------------------------------------------
# sections -> slide notebook
# --------------------------------------------------------------------------------------------
def _md(text: str, slide_type: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_markdown_cell(text)
    cell.metadata["slideshow"] = {"slide_type": slide_type}
    return cell


def _output_cell(cell, outputs, slide_type: str) -> nbformat.NotebookNode:
    new = nbformat.v4.new_code_cell("")   # inputs are hidden anyway; keep none in the deck
    new.outputs = [nbformat.from_dict(o) for o in outputs]
    for o in new.outputs:
        if o.get("output_type") == "execute_result":
            o["execution_count"] = None
    new.metadata["slideshow"] = {"slide_type": slide_type}
    return new


def slide_notebook(nb: nbformat.NotebookNode, book: cx.Book, page: str, chapter: int | None,
                   chapter_url: str | None = None, colab_url: str | None = None) -> nbformat.NotebookNode:
    """The chapter ``nb`` (executed) as a notebook with reveal.js slide metadata."""
    conv = cx.Converter(book, page, chapter, student=True)   # student: no exercise solutions
    secs = sections(nb, conv)
    title, body = secs[0], secs[1:]
    cells = []
    links = []
    if chapter_url:
        links.append(f"[the chapter]({chapter_url})")
    if colab_url:
        links.append(f"[open in Colab]({colab_url})")
    intro = [title.heading, "", learning_goals(title)]
    if links:
        intro += ["", "*Slides made from " + " · ".join(links) + ".*"]
    cells.append(_md("\n".join(intro), "slide"))
    for sec in body:
        if sec.title.lower().startswith("summary"):
            text = "\n\n".join(b.text for b in sec.blocks() if b.kind != "details")
            cells.append(_md(f"{sec.heading}\n\n{text}", "slide"))
            continue
        if sec.title.lower().startswith("exercises"):
            names = [re.sub(r"^#+\s*", "", b.text) for b in sec.blocks("heading")
                     if re.match(r"^#+\s*Exercise\b", b.text)]
            listing = "\n".join(f"- {n}" for n in names)
            cells.append(_md(f"{sec.heading}\n\n{listing}\n\nSolutions: in the book.", "slide"))
            continue
        paras = sec.blocks("para")
        lead = first_sentences(paras[0].text) if paras else ""
        maths = [b.text for b in sec.blocks("math")]
        cells.append(_md("\n\n".join([sec.heading, lead, *maths]).strip(), "slide"))
        for item in sec.items:
            if item[0] == "figure":
                _, cell, images, caption = item
                for image in images:   # one figure per sub-slide, also when a cell draws several
                    cells.append(_output_cell(cell, [image], "subslide"))
                if caption:
                    cells.append(_md(caption, "-"))
            elif item[0] == "forced":
                cell = item[1]
                if cell.cell_type == "markdown":
                    cells.append(_md(cell.source, "subslide"))
                else:
                    cells.append(_output_cell(cell, cell.get("outputs", []), "subslide"))
            elif item[1].kind == "quote" and CHECK_TITLE in item[1].text.split("\n", 1)[0]:
                cells.append(_md(item[1].text, "subslide"))
    cells = [part for c in cells for part in split_long(c)]
    # number the figures on their slides as the book does ("Figure 6.2.")
    out = nbformat.v4.new_notebook()
    out.cells = _number_captions(cells, secs, chapter)
    name = book.titles.get(page, page)
    out.metadata = {"title": f"{chapter}. {name}" if chapter else name,
                    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                    "language_info": {"name": "python"}}
    return out


def _slide_chars(text: str) -> int:
    """Characters a slide shows: its Markdown without the folded ``<details>`` answers."""
    return sum(len(b.text) for b in blocks(text) if b.kind != "details")


_ITEM = re.compile(r"^\s{0,3}([-*]|\d+\.)\s")


def _list_items(block: Block) -> list[Block]:
    """A paragraph that is a Markdown list, cut into one block per item (else the block itself)."""
    starts = [i for i, line in enumerate(block.text.split("\n")) if _ITEM.match(line)]
    if len(starts) < 2 or starts[0] != 0:
        return [block]
    lines = block.text.split("\n")
    return [Block("para", "\n".join(lines[a:b])) for a, b in zip(starts, starts[1:] + [len(lines)])]


def split_long(cell, limit: int = MAX_SLIDE_CHARS) -> list:
    """A Markdown slide longer than ``limit`` characters (:func:`_slide_chars`) as several: cut
    at block boundaries (paragraphs, equations, list items), each part at most ``limit`` long
    where the blocks allow it; the parts after the first are sub-slides headed by the slide's
    heading with "(continued)". Other cells (figures, captions, short slides) come back as they are."""
    if cell.cell_type != "markdown" or cell.metadata["slideshow"]["slide_type"] not in ("slide", "subslide") \
            or _slide_chars(cell.source) <= limit:
        return [cell]
    bs = [item for b in blocks(cell.source) for item in (_list_items(b) if b.kind == "para" else [b])]
    heading = bs[0].text if bs and bs[0].kind == "heading" else ""
    body = bs[1:] if heading else bs
    parts, current, size = [], [], 0
    for b in body:
        n = 0 if b.kind == "details" else len(b.text)
        if current and size + n > limit:
            parts.append(current)
            current, size = [], 0
        current.append(b)
        size += n
    parts.append(current)
    if len(parts) == 1:
        return [cell]

    def join(part):   # the items of one list stay one list; other blocks a blank line apart
        out = part[0].text
        for prev, b in zip(part, part[1:]):
            out += ("\n" if _ITEM.match(prev.text) and _ITEM.match(b.text) else "\n\n") + b.text
        return out

    title = re.sub(r"\s*$", "", heading)
    cells = [_md("\n\n".join(x for x in (heading, join(parts[0])) if x), cell.metadata["slideshow"]["slide_type"])]
    cells += [_md("\n\n".join(x for x in (f"{title} (continued)" if title else "", join(p)) if x), "subslide")
              for p in parts[1:]]
    return cells


def _number_captions(cells, secs, chapter) -> list:
    """Prefix each caption cell with 'Figure N.k.': figures are numbered in chapter order, also
    the ones without a caption (the book numbers only captioned ones: match that)."""
    captions = [it[3] for s in secs for it in s.items if it[0] == "figure" and it[3]]
    k, out = 0, []
    for c in cells:
        if c.cell_type == "markdown" and c.metadata["slideshow"]["slide_type"] == "-" and k < len(captions) \
                and c.source == captions[k]:
            k += 1
            c = _md(f"**Figure {chapter}.{k}.** {c.source}" if chapter else f"**Figure {k}.** {c.source}", "-")
        out.append(c)
    return out


# --------------------------------------------------------------------------------------------
# notebook -> reveal.js HTML
# --------------------------------------------------------------------------------------------
@dataclass
class Assets:
    """Where a deck loads reveal.js, MathJax (2.x: nbconvert's reveal template uses its API),
    require.js and jQuery from. nbconvert's CDN defaults are right for the published site."""
    reveal_prefix: str | None = None
    mathjax_url: str | None = None
    require_js_url: str | None = None
    jquery_url: str | None = None

    @classmethod
    def from_npm(cls, prefix: Path) -> "Assets":
        """The files that ``npm install --prefix PREFIX reveal.js@4 mathjax@2 requirejs jquery``
        leaves, as file:// URLs."""
        nm = Path(prefix).resolve() / "node_modules"
        want = {"reveal_prefix": nm / "reveal.js", "mathjax_url": nm / "mathjax" / "MathJax.js",
                "require_js_url": nm / "requirejs" / "require.js", "jquery_url": nm / "jquery" / "dist" / "jquery.min.js"}
        missing = [str(p) for p in want.values() if not p.exists()]
        if missing:
            raise SlideError(f"--npm-dir {prefix}: missing {', '.join(missing)}; run "
                             f"npm install --prefix {prefix} reveal.js@4 mathjax@2 requirejs jquery")
        urls = {k: p.as_uri() for k, p in want.items()}
        urls["mathjax_url"] += "?config=TeX-AMS_CHTML-full,Safe"
        return cls(**urls)


def render(slide_nb: nbformat.NotebookNode, assets: Assets | None = None) -> str:
    """reveal.js HTML of a slide notebook (nbconvert's SlidesExporter, inputs hidden)."""
    try:
        from nbconvert import SlidesExporter
    except ImportError as err:  # pragma: no cover - requirements.txt installs it
        raise SlideError("nbconvert is not installed: pip install -r requirements.txt") from err
    exporter = SlidesExporter()
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    exporter.reveal_scroll = True
    assets = assets or Assets()
    for trait, value in (("reveal_url_prefix", assets.reveal_prefix), ("mathjax_url", assets.mathjax_url),
                         ("require_js_url", assets.require_js_url), ("jquery_url", assets.jquery_url)):
        if value:
            setattr(exporter, trait, value)
    html, _ = exporter.from_notebook_node(slide_nb, resources={"metadata": {"name": slide_nb.metadata["title"]}})
    # nbconvert's template imports Mermaid (from a CDN) into every page; the decks draw no Mermaid
    # diagram, and an offline deck must not reach for the network
    html = _MERMAID.sub("", html)
    return html.replace("</head>", CSS + "</head>", 1)


_MERMAID = re.compile(r"<script type=\"module\">\s*import mermaid from [^<]*</script>\s*")


def build(page: str, chapter: int | None, book: cx.Book, executed: Path, out_dir: Path,
          assets: Assets | None = None) -> Path:
    path = Path(executed) / f"{page}.ipynb"
    if not path.exists():
        raise SlideError(f"{path} does not exist: build the book first (bash tools/build_book.sh, "
                         "or jupyter-book build .), which leaves the executed chapters there")
    nb = nbformat.read(path, as_version=4)
    slide_nb = slide_notebook(nb, book, page, chapter, chapter_url=book.url(page),
                              colab_url=nbtool.colab_url(Path(f"{page}.ipynb")))
    out = Path(out_dir) / deck_name(page)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(slide_nb, assets))
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("chapters", nargs="*", help="chapter names or numbers (default: every chapter)")
    ap.add_argument("--executed", type=Path, default=EXECUTED,
                    help="folder with the executed book (default: _build/jupyter_execute)")
    ap.add_argument("--out", type=Path, default=OUT, help="where to write the decks (default: _build/html/slides)")
    ap.add_argument("--reveal-prefix", help="URL of reveal.js 4 (default: nbconvert's CDN URL)")
    ap.add_argument("--mathjax-url", help="URL of MathJax 2's MathJax.js with its ?config= (default: CDN)")
    ap.add_argument("--require-js-url", help="URL of require.js (default: CDN)")
    ap.add_argument("--guide-table", action="store_true",
                    help="print the link table of book/instructors.md (after a change of repository.url)")
    ap.add_argument("--npm-dir", type=Path,
                    help="take all of these from `npm install --prefix DIR reveal.js@4 mathjax@2 requirejs jquery`")
    args = ap.parse_args(argv)
    if args.guide_table:
        print(guide_table())
        return 0
    try:
        assets = Assets.from_npm(args.npm_dir) if args.npm_dir else Assets()
        if args.reveal_prefix:
            assets.reveal_prefix = args.reveal_prefix.rstrip("/")
        if args.mathjax_url:
            assets.mathjax_url = args.mathjax_url
        if args.require_js_url:
            assets.require_js_url = args.require_js_url
        book = cx.load_book()
        todo = cx.chapters(book)
        if args.chapters:
            want = [c if not c.isdigit() else f"{int(c):02d}_" for c in args.chapters]
            todo = [(p, n) for p, n in todo if any(Path(p).name == w or Path(p).name.startswith(w) for w in want)]
            if not todo:
                raise SlideError(f"no chapter matches {' '.join(args.chapters)}")
        for page, number in todo:
            print(f"wrote {build(page, number, book, args.executed, args.out, assets)}")
    except (SlideError, cx.ExportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

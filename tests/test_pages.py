"""The Markdown pages around the chapters: the instructor's guide (links that follow _config.yml,
measured times for every chapter, exercises that exist, the project and its rubric), numbers in
the outlook that match the committed result files, the glossary and the how-to-run page."""
import json
import math
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import colab_export as cx  # noqa: E402
import slides  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
import run_chapters  # noqa: E402

BOOK = cx.load_book()
CHAPTERS = cx.chapters(BOOK)
PAGES = {name: (ROOT / "book" / f"{name}.md").read_text()
         for name in ("intro", "instructors", "outlook", "glossary", "how_to_run", "notation")}
RESULTS = ROOT / "hopfield_lab" / "results" / "cifar10"


def _refs(text):
    return re.findall(r"\{(?:ref|numref)\}`(?:[^`<]*<)?([\w-]+)>?`", text)


def test_guide_links_follow_the_config():
    assert slides.guide_table(BOOK) in PAGES["instructors"], (
        "book/instructors.md: the table of notebook and deck links is stale (repository.url or the "
        "chapters changed): paste the output of `python tools/slides.py --guide-table` over it")


def test_guide_has_a_measured_time_for_every_chapter():
    text = PAGES["instructors"]
    recs = json.loads(run_chapters.GUIDE_TIMES.read_text())
    assert [r["chapter"] for r in recs] == [Path(page).name for page, _ in CHAPTERS], (
        "the committed chapter times do not cover the chapters of _toc.yml: rerun "
        "`python benchmarks/run_chapters.py --mode quick --out hopfield_lab/results/chapter_times`")
    assert all(r["ok"] and r["mode"] == "quick" for r in recs)
    assert run_chapters.guide_table() in text, (
        "book/instructors.md: the time table is not the committed measurement: paste the output of "
        "`python benchmarks/run_chapters.py --guide-table` over it")
    for page, number in CHAPTERS:
        label = "ch-" + Path(page).name[3:].replace("_", "-")
        row = next((line for line in text.splitlines()
                    if line.startswith("|") and f"<{label}>" in line and " s " in line), None)
        assert row, f"no row with a measured time for {page} in the guide's time table"
    assert "not been measured yet" in text, "the guide must say that full-mode GPU times are not measured"


def test_guide_has_no_stale_promises():
    text = PAGES["instructors"]
    for stale in ("not yet written", "planned time", "(see below)", "NBVAL_CHECK_OUTPUT"):
        assert stale not in text, f"stale text in the guide: {stale!r}"
    for heading in ("## A one-week module", "## A four-week course", "## Problem sets and answer keys",
                    "## Final project", "### Grading rubric", "### Hosting your own copy"):
        assert heading in text, f"the guide lacks the section {heading!r}"


def test_guide_rubric_is_criteria_by_levels():
    text = PAGES["instructors"]
    table = text[text.index("### Grading rubric"):].split("\n\n")[2]
    rows = [r for r in table.splitlines() if r.startswith("| **")]
    assert len(rows) >= 5
    assert all(r.count("|") == 6 for r in rows), "every criterion has four levels"
    points = [int(re.search(r"\((\d+)\)", r).group(1)) for r in rows]
    assert sum(points) == 100


def test_guide_project_has_four_choices():
    text = PAGES["instructors"]
    project = text[text.index("## Final project"):text.index("### Grading rubric")]
    assert re.findall(r"^\*\*([A-D])\. ", project, re.M) == ["A", "B", "C", "D"]


@pytest.mark.parametrize("name", ["intro", "instructors", "outlook", "glossary", "how_to_run", "notation"])
def test_references_exist(name):
    for label in _refs(PAGES[name]):
        assert label in BOOK.labels, f"book/{name}.md refers to {label!r}, which no chapter defines"


def test_problem_sets_use_exercises():
    labels = _refs(PAGES["instructors"][PAGES["instructors"].index("## Problem sets"):])
    exercises = [lab for lab in labels if BOOK.labels[lab].kind == "exercise"]
    assert len(set(exercises)) >= 15
    assert {BOOK.labels[lab].page for lab in exercises} == {p for p, _ in CHAPTERS}, \
        "every chapter contributes to the problem sets"


def _result(name):
    return json.loads((RESULTS / name).read_text())


@pytest.mark.skipif(not RESULTS.exists(), reason="no committed CIFAR-10 results")
def test_outlook_numbers_are_the_result_files():
    text = PAGES["outlook"]
    acc = {name: _result(f"{name}_cifar_small_seed0.json")["test_acc"]
           for name in ("symmixer", "paramixer", "vanillamixer")}
    lam = {tag: _result(f"asymmixer_cifar_small_lam{tag}_seed0.json")["test_acc"]
           for tag in ("0", "1e-4", "1e-2", "1e-1")}
    assert lam["1e-2"] == lam["1e-1"]
    for value in (*acc.values(), *lam.values()):
        assert f"{100 * value:.1f} %" in text, f"the outlook does not quote {100 * value:.1f} %"
    cos = {r["block"]: r["cosine"] for r in _result("paramixer_cifar_small_seed0.json")["symmetry"]
           if r["branch"] == "tokens"}
    deep = [cos[b] for b in range(1, max(cos) + 1)]
    assert max(deep) < 0, "ParaMixer token MLPs anti-aligned in blocks 1-7"
    assert f"between −{-max(deep):.2f} and −{-min(deep):.2f} in" in text
    assert f"+{cos[0]:.2f} in block 0" in text
    assert f"{1 / math.sqrt(64 * 128):.3f} for the token MLPs" in text
    for r in _result("asymmixer_cifar_small_lam1e-2_seed0.json")["symmetry"]:
        assert round(r["cosine"], 2) == 1.00, "λ = 1e-2 ties every block, as the outlook says"
    # the vanilla Mixer's first token MLP leans towards the tied direction; the channel MLPs go both ways
    van = {(r["branch"], r["block"]): r for r in _result("vanillamixer_cifar_small_seed0.json")["symmetry"]}
    z0 = van[("tokens", 0)]["cosine"] * math.sqrt(64 * 128)
    assert f"block 0 ends at +{van[('tokens', 0)]['cosine']:.2f}" in text and f"{_words[round(z0)]} random scales" in text
    chan = [r for f in ("vanillamixer", "paramixer") for r in _result(f"{f}_cifar_small_seed0.json")["symmetry"]
            if r["branch"] == "channels"]
    z = {(r["block"], id(r)): r["cosine"] * math.sqrt(r["in_features"] * r["hidden_features"]) for r in chan}
    outer = [r["cosine"] for r in chan if r["block"] in (0, 7)]
    middle = [r["cosine"] for r in chan if r["block"] not in (0, 7)]
    assert min(outer) > 0 and f"(+{min(outer):.2f} to +{max(outer):.2f})" in text
    assert f"down to −{-min(middle):.2f}" in text
    big = sorted(abs(v) for v in z.values() if abs(v) > 3)
    assert f"{round(big[0])} to {round(big[-1])} of their random" in text
    assert "never towards it" not in text and "seven standard deviations" not in text
    ch8 = json.loads((ROOT / "book" / "08_training.ipynb").read_text())
    ch8_text = "".join("".join(c["source"]) for c in ch8["cells"])
    assert "standard\ndeviations below zero" not in ch8_text and "seven standard deviations" not in ch8_text
    assert "not a significance test" in ch8_text, "chapter 8 says what the random scale is: a unit"


_words = {14: "fourteen", 15: "fifteen", 16: "sixteen", 17: "seventeen"}


def test_outlook_and_intro_corrections():
    outlook, intro = PAGES["outlook"], PAGES["intro"]
    assert "*shrinks*" in outlook and "1/(k+2)" in outlook, "the leak-free block's step shrinks"
    assert "as random matrices" not in outlook
    assert "nobody has" not in outlook.lower()
    assert "_ni2" in outlook, "say what the official n_iter models are"
    assert "tied" in intro.split("## Who")[0] and "scalar gain" in intro.split("## Who")[0]


def test_glossary_is_a_glossary_linked_from_notation():
    text = PAGES["glossary"]
    assert "```{glossary}" in text
    terms = re.findall(r"^(\S[^\n]*)\n  \S", text.split("```{glossary}")[1], re.M)
    assert len(terms) >= 30
    assert terms == sorted(terms, key=str.lower), "terms in alphabetical order"
    assert "{doc}`glossary`" in PAGES["notation"]
    toc = (ROOT / "_toc.yml").read_text()
    assert "book/glossary" in toc and "book/how_to_run" in toc


def test_how_to_run_matches_the_readme():
    text, readme = PAGES["how_to_run"], (ROOT / "README.md").read_text()
    for cmd in ("bash tools/build_book.sh", "bash tools/test.sh"):
        assert cmd in text and cmd in readme
    for word in ("HOPFIELD_LAB_QUICK", "HOPFIELD_LAB_DEVICE", "Change runtime type", "static twin"):
        assert word in text

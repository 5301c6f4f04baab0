"""Authoring helper for the book's chapter notebooks.

    python tools/nb.py build SRC.py book/NN_name.ipynb   # jupytext percent script -> executed notebook
    python tools/nb.py refresh book/NN_name.ipynb         # re-execute an existing notebook
    python tools/nb.py source book/NN_name.ipynb          # print it as a percent script (to edit)
    python tools/nb.py strip book/NN_name.ipynb           # badge + set-up cell; drop widget state, timings, unchecked outputs
    python tools/nb.py check                              # every chapter starts with the set-up cell
    python tools/nb.py figures book/NN_name.ipynb OUT_DIR # execute (quick mode), save every figure as PNG

``build`` and ``refresh`` put the standard set-up cell first (the Colab install line uses the
repository URL from ``_config.yml``, the one place it lives), execute the notebook in quick mode
from ``book/`` with a fresh kernel, and keep outputs only in cells tagged ``nbval-check-output``
(the ones nbval compares; in a percent script: ``# %% tags=["nbval-check-output"]``); the book
build executes everything else itself.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
SETUP_MARK = "# hopfield-lab: setup"
CHECK_TAG = "nbval-check-output"   # nbval's cell tag: compare this cell's output with the stored one
BADGE_MARK = "colab-badge.svg"
COLAB_DIR = "colab"                # tools/colab_export.py writes the Colab notebooks here
KEPT_METADATA = "mystnb,tags,-all"  # cell metadata that `source` writes (and `build` reads back)


def is_checked(cell) -> bool:
    """True for a code cell whose output nbval compares (tagged ``nbval-check-output``)."""
    return cell.cell_type == "code" and CHECK_TAG in cell.get("metadata", {}).get("tags", [])


def _repository_entry(key: str) -> str:
    text = (ROOT / "_config.yml").read_text()
    block = re.search(r"^repository:\s*\n((?:[ \t]+.*\n|\s*\n)+)", text, re.M)
    m = block and re.search(rf"^\s+{key}:\s*(\S+)", block.group(1), re.M)
    if not m:
        raise SystemExit(f"_config.yml has no repository: {key}: entry")
    return m.group(1).strip('"\'')


def repository_url() -> str:
    """The repository URL, from ``_config.yml`` (its one home)."""
    return _repository_entry("url")


def repository_branch() -> str:
    return _repository_entry("branch")


def pages_url() -> str:
    """Where GitHub Pages publishes the book: ``https://OWNER.github.io/REPO/``."""
    owner, repo = repository_url().removeprefix("https://github.com/").rstrip("/").split("/")[:2]
    return f"https://{owner.lower()}.github.io/{repo}/"


def colab_url(path: Path, student: bool = False) -> str:
    """Colab's URL of the exported Colab notebook of chapter ``path`` (see tools/colab_export.py)."""
    repo = repository_url().removeprefix("https://github.com/").rstrip("/")
    sub = f"{COLAB_DIR}/student" if student else COLAB_DIR
    return (f"https://colab.research.google.com/github/{repo}/blob/{repository_branch()}/"
            f"{sub}/book/{Path(path).name}")


#: What the set-up cell installs on Colab (tools/colab_stack.py points it at a local wheel).
PIP_SPEC = "hopfield-lab @ git+{url}"


def setup_cell_source() -> str:
    """The first code cell of every chapter. On Colab it installs the library with one ``!pip``
    (a shell command, not IPython's ``%pip`` magic, which prints "Note: you may need to restart
    the kernel to use updated packages." after every install although nothing needs a restart:
    ``--no-deps`` leaves Colab's own packages alone)."""
    return "\n".join(
        [
            f"{SETUP_MARK} (on Colab: installs the library without touching Colab's own packages, "
            "so no restart; everywhere: seeds, picks the device and shows the mode)",
            "import sys",
            "if \"google.colab\" in sys.modules:",
            f"    !{{sys.executable}} -m pip install -q --no-deps \"{PIP_SPEC.format(url=repository_url())}\" \"einops>=0.7\"",
            "import hopfield_lab as hl",
            "DEVICE = hl.setup(seed=0)",
        ]
    )


def setup_cell() -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(setup_cell_source())
    cell.metadata["tags"] = ["hide-input"]
    return cell


def colab_badge_source(path: Path) -> str:
    """Markdown of the 'Open in Colab' badge for the chapter at ``path`` (URL from _config.yml)."""
    return f"[![Open In Colab](https://colab.research.google.com/assets/{BADGE_MARK})]({colab_url(path)})"


def with_setup(nb: nbformat.NotebookNode, path: Path) -> nbformat.NotebookNode:
    """Put the Colab badge and the standard set-up cell right after the chapter's title cell."""
    def reuse(new: nbformat.NotebookNode) -> nbformat.NotebookNode:
        """The existing cell if it is already up to date (keeps its id: quiet diffs), else ``new``."""
        for c in nb.cells:
            if c.cell_type == new.cell_type and c.source == new.source and c.metadata == new.metadata:
                return c
        return new

    badge = reuse(nbformat.v4.new_markdown_cell(colab_badge_source(path)))
    setup = reuse(setup_cell())
    cells = [c for c in nb.cells
             if not (c.cell_type == "code" and c.source.startswith(SETUP_MARK))
             and not (c.cell_type == "markdown" and BADGE_MARK in c.source)]
    # keep a leading title markdown cell first, then the badge and the set-up cell
    idx = 1 if cells and cells[0].cell_type == "markdown" else 0
    nb.cells = cells[:idx] + [badge, setup] + cells[idx:]
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata.setdefault("language_info", {"name": "python"})
    return nb


def execute_and_strip(nb: nbformat.NotebookNode, path: Path) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    os.environ["HOPFIELD_LAB_QUICK"] = "1"
    os.environ.setdefault("HOPFIELD_LAB_DEVICE", "cpu")
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return strip(nb)


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Keep only what the repository needs: sources, and outputs of ``nbval-check-output`` cells."""
    nb.metadata.pop("widgets", None)  # widget state: re-created when the book executes
    for cell in nb.cells:
        cell.metadata.pop("execution", None)  # timestamps: noise in diffs
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if not is_checked(cell):
            cell.outputs = []
            cell.execution_count = None
    return nb


def build(src: Path, out: Path) -> None:
    import jupytext

    nb = jupytext.read(src)
    nb = with_setup(nb, out)
    nb = execute_and_strip(nb, out)
    nbformat.write(nb, out)
    print(f"wrote {out}")


def refresh(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nb = execute_and_strip(with_setup(nb, path), path)
    nbformat.write(nb, path)
    print(f"refreshed {path}")


def check() -> int:
    bad = 0
    for path in sorted(BOOK.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        if not code or code[0].source != setup_cell_source():
            print(f"{path}: first code cell is not the standard set-up cell; run tools/nb.py strip {path}")
            bad += 1
        if colab_badge_source(path) not in [c.source for c in nb.cells if c.cell_type == "markdown"]:
            print(f"{path}: no Colab badge; run tools/nb.py strip {path}")
            bad += 1
    return bad


def figures(path: Path, out_dir: Path) -> None:
    """Execute a chapter in quick mode and write every image output to ``OUT_DIR/cellNN_k.png``,
    with the printed text of each cell in ``OUT_DIR/text.md``: to read a page's figures and
    numbers against its prose without building the book."""
    import base64

    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    os.environ["HOPFIELD_LAB_QUICK"] = "1"
    os.environ.setdefault("HOPFIELD_LAB_DEVICE", "cpu")
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    out_dir.mkdir(parents=True, exist_ok=True)
    text = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for k, o in enumerate(cell.get("outputs", [])):
            data = o.get("data", {})
            if "image/png" in data:
                (out_dir / f"cell{i:02d}_{k}.png").write_bytes(base64.b64decode(data["image/png"]))
            elif o.get("output_type") == "stream":
                text.append(f"## cell {i} ({o['name']})\n{o['text']}")
            elif "text/plain" in data:
                text.append(f"## cell {i} (value)\n{data['text/plain']}")
    (out_dir / "text.md").write_text("\n".join(text))
    print(f"wrote {len(list(out_dir.glob('*.png')))} figures and text.md to {out_dir}")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    cmd, *rest = argv
    if cmd == "build" and len(rest) == 2:
        build(Path(rest[0]), Path(rest[1]))
    elif cmd == "refresh" and rest:
        for p in rest:
            refresh(Path(p))
    elif cmd == "source" and len(rest) == 1:
        import jupytext

        nb = nbformat.read(rest[0], as_version=4)
        # keep the cell tags and the figure captions on the round trip, whatever filter is stored
        nb.metadata.setdefault("jupytext", {})["cell_metadata_filter"] = KEPT_METADATA
        print(jupytext.writes(nb, fmt="py:percent"))
    elif cmd == "strip" and rest:
        for p in rest:
            nbformat.write(strip(with_setup(nbformat.read(p, as_version=4), Path(p))), p)
    elif cmd == "check":
        return 1 if check() else 0
    elif cmd == "figures" and len(rest) == 2:
        figures(Path(rest[0]), Path(rest[1]))
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The Colab-stack check: every exported chapter, the instructor's and the student's version,
executed the way Colab runs it, on Colab's package versions.

    bash tools/colab_stack.sh                  # make (or reuse) .colab-venv, then `run` (tools/test.sh calls it)
    python tools/colab_stack.py run --venv .colab-venv [--jobs 2] [--keep DIR] [--only 01_hopfield ...]
    python tools/colab_stack.py refresh FREEZE --source "googlecolab/backend-info COMMIT (DATE)" --read-on DATE

``run`` (with the project's Python; the notebooks run in kernels of the side environment):

1. builds the library's wheel from a copy of the working tree (tracked and untracked files that
   git does not ignore, as a fresh clone has them) and checks that its package data are in it;
2. exports every chapter with ``tools/colab_export.py`` into a temporary folder, both flavours,
   fresh from ``book/`` (the committed ``colab/`` copies are not trusted);
3. runs each notebook top to bottom in a kernel of the side environment, in quick mode on the
   CPU, from an empty working directory, with a stand-in ``google.colab`` module imported at
   kernel start (as Colab does), so the set-up cell takes its Colab branch; its one change to a
   notebook: the set-up cell's pip line installs the built wheel instead of the GitHub URL. The
   side environment is left without the library, so the first notebook's set-up cell really
   installs it (non-editable); the others find it installed, as a second chapter does on Colab;
4. fails unless every cell ran without an error, except, in the student version only, cells
   that stop at an exercise stub (``NotImplementedError`` with the stub's own message: the code
   a student must write); every check cell must print its one-line verdict (``✔`` in the
   instructor's version, ``✘ ...: not implemented yet`` in the student's), every other
   cell tagged ``nbval-check-output`` must print what the book's chapter stores (after nbval's
   sanitizers: a checked value must not depend on package versions), and a last
   harness cell confirms the Colab branch, quick mode and the installed (not the working-tree)
   library. One line per notebook and the counts per flavour are printed.

``refresh`` rewrites ``tools/colab_stack.txt``, the pinned list of Colab's versions: Colab's
``pip freeze`` (``pip-freeze.gpu.txt`` of https://github.com/googlecolab/backend-info) without
what cannot or must not be installed here (see ``EXCLUDED``). ``tools/colab_stack.sh`` installs
the library's dependencies, ipykernel, IPython and the project's torch pin with that list as pip
constraints, so every package installed gets Colab's version.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STACK = ROOT / "tools" / "colab_stack.txt"
sys.path.insert(0, str(ROOT / "tools"))

#: Lines of Colab's freeze left out of the constraints, with the reason (the header says it too).
EXCLUDED = [
    (re.compile(r"^(torch|torchvision|torchaudio|torchcodec|torchao|triton|nvidia-.*|cuda-.*)$", re.I),
     "Colab's CUDA builds of torch and its CUDA libraries: the project's torch pin is used instead"),
    (re.compile(r"^setuptools$", re.I), "torch 2.13 needs setuptools>=77.0.3 (Colab has 75.2.0 with torch 2.11)"),
]
HARNESS = "colab-stack-harness:"
STUB_MESSAGE_RE = re.compile(r'raise NotImplementedError\("(.*)"\)')


# --------------------------------------------------------------------------------------------
# the pinned list
# --------------------------------------------------------------------------------------------
def refresh(freeze: Path, source: str, read_on: str) -> str:
    """The text of ``colab_stack.txt`` from Colab's ``pip freeze`` output."""
    pins, dropped = [], []
    for line in freeze.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$", line)
        if not m:
            dropped.append(line.split(" @ ")[0] + " (installed from a URL or a local file)")
            continue
        name, version = m.groups()
        why = next((w for pat, w in EXCLUDED if pat.match(name)), None)
        if why or "+" in version:
            dropped.append(f"{name}=={version}")
            continue
        pins.append(line)
    python = re.search(r"^Python (\d+\.\d+)", (freeze.parent / "os-info-gpu.txt").read_text(), re.M) \
        if (freeze.parent / "os-info-gpu.txt").exists() else None
    if not python:
        raise SystemExit(f"error: no 'Python X.Y' line in {freeze.parent / 'os-info-gpu.txt'}; "
                         "copy it from googlecolab/backend-info next to the freeze file.")
    head = [
        "# Colab's package versions (GPU runtime): pip constraints for the Colab-stack check.",
        f"# Source: {source}, pip-freeze.gpu.txt and os-info-gpu.txt; read on {read_on}.",
        "# Refresh: copy the two files of https://github.com/googlecolab/backend-info into a folder, then",
        "#   python tools/colab_stack.py refresh FOLDER/pip-freeze.gpu.txt --source 'googlecolab/backend-info COMMIT (DATE)' --read-on TODAY",
        "# and run `bash tools/colab_stack.sh` (it rebuilds .colab-venv when this file changes).",
        f"# python: {python.group(1)}",
        "# Left out (Colab's values in brackets): torch and its CUDA libraries, because Colab's torch is a",
        "# CUDA build of another version; the check installs the project's pin from requirements.txt",
        "# (torch==2.13.0; from PyPI that is the CUDA 13 build, which runs on the CPU; with TORCH_INDEX_URL",
        "# set, e.g. https://download.pytorch.org/whl/cpu, the CPU build), with torch's own CUDA libraries.",
        *[f"#   [{d}]" for d in dropped if not d.startswith("setuptools")],
        *[f"#   [{d}] {w}" for d in dropped if d.startswith("setuptools")
          for pat, w in EXCLUDED if pat.match("setuptools")],
        "",
    ]
    return "\n".join(head + pins) + "\n"


def stack_python() -> str:
    m = re.search(r"^# python: (\S+)", STACK.read_text(), re.M)
    if not m:
        raise SystemExit(f"error: {STACK.name} has no '# python: X.Y' line; rewrite it with `refresh`.")
    return m.group(1)


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------
def build_wheel(venv_python: Path, work: Path) -> Path:
    """The library's wheel, built from a copy of the working tree as a fresh clone has it."""
    src = work / "src"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for f in filter(None, files):
        if (ROOT / f).is_file() and not f.startswith("colab/"):
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, src / f)
    out = work / "wheel"
    r = subprocess.run([str(venv_python), "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(out), str(src)], capture_output=True, text=True)
    wheels = sorted(out.glob("hopfield_lab-*.whl"))
    if r.returncode or len(wheels) != 1:
        raise SystemExit(f"error: building the wheel failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
    names = zipfile.ZipFile(wheels[0]).namelist()
    for data in ("hopfield_lab/book/demos/letters16.txt", "hopfield_lab/results/cifar10/"):
        if not any(n.startswith(data) for n in names):
            raise SystemExit(f"error: the wheel lacks {data}: add it to pyproject's package-data.")
    return wheels[0]


def fake_colab(work: Path) -> tuple[Path, Path]:
    """A stand-in ``google.colab`` package and an IPython profile that imports it at kernel start."""
    pkg = work / "fake" / "google" / "colab"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        '"""Stand-in for Colab\'s google.colab (tools/colab_stack.py): Colab imports it at kernel '
        'start, and the set-up cell looks for it in sys.modules to take its Colab branch."""\n')
    startup = work / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text("import google.colab  # as on Colab\n")
    return work / "fake", work / "ipython"


def kernelspec(work: Path, venv: Path, fake: Path, ipython_dir: Path, threads: int) -> Path:
    """A kernel of the side environment; returns the JUPYTER_PATH folder that holds it."""
    kdir = work / "jupyter" / "kernels" / "colab-stack"
    kdir.mkdir(parents=True)
    env = {"PYTHONPATH": str(fake), "IPYTHONDIR": str(ipython_dir), "HOPFIELD_LAB_QUICK": "1",
           "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(venv),
           "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "MPLBACKEND": "",
           "PYTHONNOUSERSITE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "PYDEVD_DISABLE_FILE_VALIDATION": "1"}  # ipykernel 6.17's debugger warns about Python 3.13's frozen modules
    spec = {"argv": [str(venv / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Colab stack", "language": "python", "env": env}
    (kdir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return work / "jupyter"


@dataclass
class Outcome:
    flavour: str
    name: str
    cells: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)      # what failed (empty: the notebook passes)
    stubbed: list[int] = field(default_factory=list)     # cells stopped at an exercise stub
    verdicts: list[str] = field(default_factory=list)    # the check cells' one-line verdicts


def _text(output, stdout_only: bool = False) -> str:
    if output.output_type == "stream":
        return output.text if output.name == "stdout" or not stdout_only else ""
    if output.output_type in ("execute_result", "display_data"):
        return output.get("data", {}).get("text/plain", "")
    return ""


def sanitizers() -> list[tuple[re.Pattern, str]]:
    """nbval's sanitizers (``tools/nbval_sanitize.cfg``), applied before outputs are compared."""
    text = (ROOT / "tools" / "nbval_sanitize.cfg").read_text()
    return [(re.compile(rx), rep) for rx, rep in re.findall(r"^regex: (.*)\nreplace: (.*)$", text, re.M)]


def checked_differences(nb, name: str) -> list[str]:
    """Cells tagged nbval-check-output whose output differs from the one stored in the book's
    chapter (the values the book checks must not depend on package versions); exercise check
    cells are judged by their verdict instead."""
    import nbformat

    book = {c.get("id"): c for c in nbformat.read(ROOT / "book" / f"{name}.ipynb", as_version=4).cells}
    subs = sanitizers()

    def clean(outputs) -> list[str]:
        text = "".join(_text(o, stdout_only=True) for o in outputs)
        for rx, rep in subs:
            text = rx.sub(rep, text)
        return text.strip().splitlines()

    found = []
    for k, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        if "nbval-check-output" not in cell.metadata.get("tags", []) or re.search(r"\bcheck_\w+\(", cell.source):
            continue
        if cell.get("id") not in book:
            found.append(f"checked cell {k}: not found in book/{name}.ipynb (cell id {cell.get('id')})")
            continue
        got, want = clean(cell.get("outputs", [])), clean(book[cell.id].outputs)
        if got != want:
            diff = next(((g, w) for g, w in zip(got + [""] * len(want), want + [""] * len(got)) if g != w), ("", ""))
            found.append(f"checked cell {k}: output differs from the book's stored one: got {diff[0]!r}, "
                         f"stored {diff[1]!r}")
    return found


def prepare(path: Path, wheel: Path, spec_url: str) -> "nbformat.NotebookNode":
    import nbformat
    import nb as nbtool

    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code or not code[0].source.startswith(nbtool.SETUP_MARK):
        raise SystemExit(f"error: {path.name}: the first code cell is not the set-up cell")
    github = nbtool.PIP_SPEC.format(url=spec_url)
    if code[0].source.count(github) != 1:
        raise SystemExit(f"error: {path.name}: the set-up cell does not install {github!r} exactly once")
    code[0].source = code[0].source.replace(github, f"hopfield-lab @ {wheel.as_uri()}")
    nb.cells.append(nbformat.v4.new_code_cell(
        "import json, os, sys, hopfield_lab\n"
        f"print({HARNESS!r}, json.dumps({{'file': hopfield_lab.__file__, 'colab': 'google.colab' in sys.modules, "
        "'quick': hopfield_lab.quick(), 'cwd': os.getcwd()}))"))
    return nb


def execute(flavour: str, path: str, wheel: str, spec_url: str, cwd: str, jupyter_path: str,
            venv: str, stub_message: str, cell_timeout: int) -> Outcome:
    """Run one notebook in a side-environment kernel; classify every error."""
    os.environ["JUPYTER_PATH"] = jupyter_path
    import nbformat
    from nbclient import NotebookClient

    out = Outcome(flavour, Path(path).stem)
    nb = prepare(Path(path), Path(wheel), spec_url)
    out.cells = sum(c.cell_type == "code" for c in nb.cells) - 1  # without the harness cell
    t0 = time.time()
    client = NotebookClient(nb, kernel_name="colab-stack", timeout=cell_timeout, allow_errors=True,
                            resources={"metadata": {"path": cwd}})
    try:
        client.execute()
    except Exception as err:  # the kernel died or a cell ran past the timeout
        out.errors.append(f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}")
    out.seconds = time.time() - t0
    saved = Path(cwd).parents[2] / "executed" / flavour / Path(path).name
    saved.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, saved)
    judge_cells(out, nb, stub_message, venv, cwd)
    out.errors += checked_differences(nb, out.name)
    return out


def judge_cells(out: Outcome, nb, stub_message: str, venv: str, cwd: str) -> None:
    """Fill ``out.errors``, ``out.stubbed`` and ``out.verdicts`` from the executed notebook ``nb``
    (its last code cell is the harness cell)."""
    flavour = out.flavour
    code = [c for c in nb.cells if c.cell_type == "code"]
    for k, cell in enumerate(code[:-1]):
        first = next((l for l in cell.source.splitlines() if l.strip() and not l.startswith("#")), "")
        for o in cell.get("outputs", []):
            if o.output_type != "error":
                continue
            if flavour == "student" and o.ename == "NotImplementedError" and o.evalue == stub_message:
                out.stubbed.append(k)
            else:
                out.errors.append(f"code cell {k} ({first[:60]!r}): {o.ename}: {o.evalue.splitlines()[0] if o.evalue else ''}")
        if re.search(r"\bcheck_\w+\(", cell.source) and "nbval-check-output" in cell.metadata.get("tags", []):
            printed = "".join(_text(o) for o in cell.get("outputs", [])).strip()
            out.verdicts.append(printed)
            # every exercise's solution is stubbed in the student's version
            ok = printed.startswith("✔") if flavour == "instructor" else "not implemented yet" in printed
            if len(printed.splitlines()) != 1 or not ok:
                out.errors.append(f"check cell {k}: expected a one-line verdict, printed {printed[:120]!r}")
    setup_text = "".join(_text(o) for o in code[0].get("outputs", []))
    if "restart" in setup_text.lower() or "error" in setup_text.lower():
        out.errors.append(f"the set-up cell printed: {setup_text.strip()[:200]!r}")
    harness = "".join(_text(o) for o in code[-1].get("outputs", []))
    if HARNESS not in harness:
        out.errors.append("the harness cell did not run")
    else:
        info = json.loads(harness.split(HARNESS, 1)[1])
        if not info["colab"] or not info["quick"]:
            out.errors.append(f"not the Colab branch in quick mode: {info}")
        if not info["file"].startswith(str(Path(venv).resolve())) or "site-packages" not in info["file"]:
            out.errors.append(f"hopfield_lab came from {info['file']}, not the installed wheel")
        if Path(info["cwd"]).resolve() != Path(cwd).resolve():
            out.errors.append(f"the kernel ran in {info['cwd']}, not the empty folder {cwd}")


def run(venv: Path, jobs: int, keep: Path | None, cell_timeout: int, only: list[str] | None = None) -> int:
    import colab_export
    import nb as nbtool

    venv = venv.resolve()
    py = venv / "bin" / "python"
    if not py.exists():
        print(f"Colab-stack check: no side environment at {venv} (make it with: bash tools/colab_stack.sh)")
        return 1
    work = Path(keep).resolve() if keep else Path(tempfile.mkdtemp(prefix="colab-stack-"))
    if keep and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    wheel = build_wheel(py, work)
    subprocess.run([str(py), "-m", "pip", "uninstall", "-q", "-y", "hopfield-lab"], capture_output=True)
    versions = subprocess.run(
        [str(py), "-c", "import sys, numpy, matplotlib, ipywidgets, IPython, ipykernel, torch; "
         "print(f'Python {sys.version.split()[0]}, numpy {numpy.__version__}, matplotlib {matplotlib.__version__}, "
         "ipywidgets {ipywidgets.__version__}, IPython {IPython.__version__}, ipykernel {ipykernel.__version__}, "
         "torch {torch.__version__}')"], capture_output=True, text=True, check=True).stdout.strip()
    books = {"instructor": colab_export.export_all(work / "export" / "instructor"),
             "student": colab_export.export_all(work / "export" / "student", student=True)}
    if only:
        books = {f: [p for p in paths if any(o in p.stem for o in only)] for f, paths in books.items()}
        if not any(books.values()):
            print(f"Colab-stack check: no chapter matches --only {' '.join(only)}")
            return 1
    fake, ipython_dir = fake_colab(work)
    threads = 1 if jobs > 1 else 2
    jpath = kernelspec(work, venv, fake, ipython_dir, threads)
    stub = STUB_MESSAGE_RE.search(colab_export.STUDENT_STUB[-1]).group(1)
    tasks = []
    for flavour, paths in books.items():
        for p in paths:
            cwd = work / "content" / flavour / p.stem   # an empty folder, like Colab's /content
            cwd.mkdir(parents=True)
            tasks.append((flavour, str(p), str(wheel), nbtool.repository_url(), str(cwd), str(jpath),
                          str(venv), stub, cell_timeout))
    print(f"==> Colab-stack check: {len(tasks)} notebooks on {versions}; {jobs} at a time "
          f"({threads} thread(s) each), quick mode, wheel {wheel.name}")
    results: list[Outcome] = []

    def report(o: Outcome) -> None:
        results.append(o)
        status = "ok" if not o.errors else f"{len(o.errors)} error(s)"
        extra = f", {len(o.stubbed)} cell(s) stopped at exercise stubs" if o.stubbed else ""
        print(f"    {o.flavour:10s} {o.name:24s} {o.cells:3d} code cells, {o.seconds:5.0f} s: {status}{extra}", flush=True)
        for e in o.errors[:3]:
            print(f"        {e}", flush=True)

    # the first notebook alone: its set-up cell installs the wheel into the side environment.
    # Workers are spawned, not forked: a child forked from a process that has run a kernel
    # client inherits its ZeroMQ threads' locks and can hang.
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        report(pool.submit(execute, *tasks[0]).result())
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=spawn) as pool:
        for fut in concurrent.futures.as_completed([pool.submit(execute, *t) for t in tasks[1:]]):
            report(fut.result())
    failed = 0
    for flavour in books:
        mine = [o for o in results if o.flavour == flavour]
        errors = sum(len(o.errors) for o in mine)
        failed += errors
        stubbed = sum(len(o.stubbed) for o in mine)
        print(f"==> {flavour}: {len(mine)} notebooks run, {errors} errors, "
              f"{sum(len(o.verdicts) for o in mine)} check cells gave their verdict"
              + (f", {stubbed} cells stopped at an exercise stub (allowed: the student's part)" if stubbed else ""))
    if not only and not any(o.verdicts for o in results if o.flavour == "student"):
        print("==> no check cell ran in the student notebooks: is the export stubbing solutions?")
        failed += 1
    print(f"==> Colab-stack check {'passed' if not failed else 'FAILED'} in {time.time() - t0:.0f} s"
          + ("" if keep else f" (work folder {work} removed)"))
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute every exported chapter in the side environment")
    r.add_argument("--venv", type=Path, default=ROOT / ".colab-venv")
    r.add_argument("--jobs", type=int, default=2, help="notebooks at a time (default 2)")
    r.add_argument("--keep", type=Path, help="work in this folder and keep it (executed notebooks, wheel)")
    r.add_argument("--cell-timeout", type=int, default=900, help="seconds per cell (default 900)")
    r.add_argument("--only", nargs="+", metavar="NAME", help="only the chapters whose file name contains NAME "
                   "(a partial check: tools/test.sh runs them all)")
    f = sub.add_parser("refresh", help="rewrite tools/colab_stack.txt from Colab's pip freeze")
    f.add_argument("freeze", type=Path)
    f.add_argument("--source", required=True, help="e.g. 'googlecolab/backend-info a724079 (2026-08-19)'")
    f.add_argument("--read-on", required=True, help="the date you read it, YYYY-MM-DD")
    sub.add_parser("python", help="print the Python version of the pinned stack")
    args = ap.parse_args(argv)
    if args.cmd == "refresh":
        STACK.write_text(refresh(args.freeze, args.source, args.read_on))
        print(f"wrote {STACK.relative_to(ROOT)}")
        return 0
    if args.cmd == "python":
        print(stack_python())
        return 0
    if args.jobs < 1:
        ap.error(f"--jobs must be at least 1, got {args.jobs}")
    return run(args.venv, args.jobs, args.keep, args.cell_timeout, args.only)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""An offline build: the book serves MathJax, reveal.js, the players' icons and the rest itself.

    python tools/offline.py install [--cache DIR]           # npm ci of tools/offline/package.json (+ lock)
    python tools/offline.py localize _build/html [--cache DIR]

``HOPFIELD_LAB_OFFLINE=1 bash tools/build_book.sh`` runs ``localize`` after the pages and the slide
decks are written. It

1. installs the pinned packages of ``tools/offline/package.json`` (with its lock file) from the npm
   registry into a cache folder (default ``_build/offline_npm``; reused while the lock is unchanged),
2. copies what a reader's browser loads into ``<html>/_static/offline/`` (MathJax 3 for the pages,
   MathJax 2 and reveal.js for the decks, which nbconvert's reveal template needs, Font Awesome 4 for
   the animation players' buttons, require.js and jQuery for the decks), and
3. rewrites every CDN URL that Sphinx, matplotlib (``to_jshtml``) and nbconvert emit into a path
   relative to the page, then fails (one line per reference) if any page still loads a script,
   style sheet, image or font from the network.

Nothing of it is committed: the versions are pinned in the package.json/lock, the files come from
the registry at build time. The browser test (tools/browser_check.py) then reads the build with
every non-local request blocked.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = ROOT / "tools" / "offline"
CACHE = ROOT / "_build" / "offline_npm"
VENDOR = Path("_static") / "offline"

#: what to copy: vendor folder name -> (npm package, paths inside it; a folder is copied whole)
COPY = {
    "mathjax": ("mathjax", ["es5"]),
    "mathjax2": ("mathjax2", ["MathJax.js", "config", "extensions", "jax/input/TeX", "jax/output/CommonHTML",
                              "jax/element", "localization/en", "fonts/HTML-CSS/TeX/woff"]),
    "reveal.js": ("reveal.js", ["dist", "plugin/notes"]),
    "font-awesome": ("font-awesome", ["css", "fonts"]),
    "requirejs": ("requirejs", ["require.js"]),
    "jquery": ("jquery", ["dist/jquery.min.js"]),
    "fonts/lato": ("@fontsource/lato", ["400.css", "400-italic.css", "700.css", "700-italic.css", "files"]),
    "fonts/news-cycle": ("@fontsource/news-cycle", ["400.css", "700.css", "files"]),
}

#: Google Fonts that a copied style sheet imports (reveal.js's "simple" theme of the decks) ->
#: the fontsource style sheets that replace them (relative to _static/offline)
FONTS = {
    "News+Cycle": ["fonts/news-cycle/400.css", "fonts/news-cycle/700.css"],
    "Lato": ["fonts/lato/400.css", "fonts/lato/400-italic.css", "fonts/lato/700.css", "fonts/lato/700-italic.css"],
}
_GOOGLE_FONT = re.compile(r"@import url\(https://fonts\.googleapis\.com/css\?family=([^:)&]+)[^)]*\);")

#: packages taken whole from their registry tarball (``npm pack``, checked against the integrity
#: pinned here): the widget manager's package.json pulls ~220 MB of build dependencies that its
#: prebuilt ``dist`` does not need. vendor folder -> (package@version, integrity, paths)
PACKS = {
    "html-manager": ("@jupyter-widgets/html-manager@1.0.6",
                     "sha512-+Mn+Ra8wyIHrYaUpfmf9A3dsLkt/NuwzPQN8sthdxBD35VV5cOJbpmgMhNR27n/rmP3mKyEe0PWCJrtZrXTXDQ==",
                     ["dist"]),
}

#: the "Open in Colab" badge, drawn here (an offline reader cannot open Colab, but sees the link)
BADGE = ('<svg xmlns="http://www.w3.org/2000/svg" width="117" height="20" role="img" aria-label="Open in Colab">'
         '<rect width="117" height="20" rx="3" fill="#555"/><rect x="40" width="77" height="20" rx="3" fill="#f9ab00"/>'
         '<text x="6" y="14" fill="#fff" font-family="Verdana,sans-serif" font-size="11">Open</text>'
         '<text x="46" y="14" fill="#fff" font-family="Verdana,sans-serif" font-size="11">in Colab</text></svg>')

#: CDN URL (a regular expression, matched anywhere in a page) -> path under _static/offline
URLS = [
    (r"https://cdn\.jsdelivr\.net/npm/mathjax@3(?:\.\d+)*/es5/", "mathjax/es5/"),
    (r"https://cdnjs\.cloudflare\.com/ajax/libs/mathjax/2\.7\.\d+/(?:latest|MathJax)\.js", "mathjax2/MathJax.js"),
    (r"https://unpkg\.com/reveal\.js@4\.0\.2/", "reveal.js/"),
    (r"https://(?:maxcdn\.bootstrapcdn\.com/font-awesome|cdnjs\.cloudflare\.com/ajax/libs/font-awesome)"
     r"/4\.\d+\.\d+/css/font-awesome(\.min)?\.css", "font-awesome/css/font-awesome.min.css"),
    (r"https://cdnjs\.cloudflare\.com/ajax/libs/require\.js/2\.\d+\.\d+/require(\.min)?\.js", "requirejs/require.js"),
    (r"https://cdnjs\.cloudflare\.com/ajax/libs/jquery/2\.\d+\.\d+/jquery(\.min)?\.js", "jquery/dist/jquery.min.js"),
    (r"https://cdn\.jsdelivr\.net/npm/@jupyter-widgets/html-manager@1\.0\.6/dist/", "html-manager/dist/"),
    (r"https://colab\.research\.google\.com/assets/colab-badge\.svg", "colab-badge.svg"),
]

#: a tag that makes the browser fetch a resource from another host (links to other sites are fine)
_REMOTE = re.compile(r"<(?:script|img|iframe|source|audio|video|embed)\b[^>]*?\bsrc=[\"']((?:https?:)?//[^\"']+)"
                     r"|<link\b(?=[^>]*\brel=[\"'][^\"']*(?:stylesheet|preload|icon)[^\"']*[\"'])[^>]*?"
                     r"\bhref=[\"']((?:https?:)?//[^\"']+)"
                     r"|\bimport\b[^;\n]*?[\"']((?:https?:)?//[^\"']+)[\"']", re.I)


class OfflineError(RuntimeError):
    pass


def install(cache: Path = CACHE) -> Path:
    """``npm ci`` the pinned packages into ``cache`` (skipped while its lock equals ours); returns
    the ``node_modules`` folder."""
    cache = Path(cache)
    lock = (PACKAGE_DIR / "package-lock.json").read_bytes()
    stamp = cache / ".lock-sha256"
    digest = hashlib.sha256(lock + repr(sorted(PACKS.items())).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and (cache / "node_modules").is_dir():
        return cache / "node_modules"
    if not shutil.which("npm"):
        raise OfflineError("npm is not installed: the offline build takes MathJax, reveal.js and Font Awesome "
                           "from the npm registry (apt-get install -y npm)")
    cache.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(PACKAGE_DIR / name, cache / name)
    proc = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=cache,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise OfflineError(f"npm ci in {cache} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    for name, (spec, integrity, _) in PACKS.items():
        proc = subprocess.run(["npm", "pack", spec, "--json", "--loglevel=error"], cwd=cache, capture_output=True, text=True)
        if proc.returncode != 0:
            raise OfflineError(f"npm pack {spec} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        info = json.loads(proc.stdout)[0]
        if info["integrity"] != integrity:
            raise OfflineError(f"npm pack {spec}: integrity {info['integrity']} is not the pinned {integrity}")
        dest = cache / "packs" / name
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        with tarfile.open(cache / info["filename"]) as tar:
            tar.extractall(dest, filter="data")
        (cache / info["filename"]).unlink()
    stamp.write_text(digest)
    return cache / "node_modules"


def copy_assets(node_modules: Path, html: Path) -> Path:
    """Copy the files of ``COPY`` into ``html/_static/offline``; returns that folder."""
    dest = Path(html) / VENDOR
    packs = Path(node_modules).parent / "packs"
    todo = [(Path(node_modules) / package, name, parts) for name, (package, parts) in COPY.items()]
    todo += [(packs / name / "package", name, parts) for name, (_, _, parts) in PACKS.items()]
    for base, name, parts in todo:
        for part in parts:
            src, dst = base / part, dest / name / part
            if not src.exists():
                raise OfflineError(f"{src} is missing: the npm package changed its layout; "
                                   "update COPY in tools/offline.py")
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.map"))
            else:
                shutil.copy2(src, dst)
    (dest / "colab-badge.svg").write_text(BADGE)
    for css in (dest / "reveal.js" / "dist" / "theme").glob("*.css"):
        text = css.read_text(encoding="utf-8")
        new = _GOOGLE_FONT.sub(lambda m: _font_imports(m, css, dest), text)
        if new != text:
            css.write_text(new, encoding="utf-8")
    return dest


def _font_imports(m: re.Match, css: Path, dest: Path) -> str:
    sheets = FONTS.get(m.group(1))
    if not sheets:   # a theme the decks do not use: drop the import (the browser's fonts stand in)
        return ""
    return "".join(f"@import url({os.path.relpath(dest / s, css.parent)});" for s in sheets)


def rewrite(text: str, prefix: str) -> str:
    """``text`` with every CDN URL of ``URLS`` replaced by ``prefix`` + its vendor path (``prefix`` is
    the relative URL of ``_static/offline/`` from the page)."""
    for pattern, local in URLS:
        text = re.sub(pattern, lambda m, local=local: prefix + local, text)
    return _drop_sri(text)


_SRI = re.compile(r"\s(?:integrity|crossorigin)=(?:\"[^\"]*\"|'[^']*')")


def _drop_sri(text: str) -> str:
    """A CDN file's Subresource Integrity hash does not fit the registry's copy of it (require.js
    from cdnjs is minified, npm's is not): drop ``integrity``/``crossorigin`` from the tags that now
    load a local file (it guards against a tampering CDN; a file of the build needs no guard)."""
    return re.sub(r"<(?:script|link)\b[^>]*_static/offline/[^>]*>", lambda m: _SRI.sub("", m.group(0)), text)


def remote_resources(text: str) -> list[str]:
    """URLs of the resources a page would fetch from another host (scripts, style sheets, images...)."""
    return [a or b or c for a, b, c in _REMOTE.findall(text)]


def localize(html: Path, cache: Path = CACHE) -> list[str]:
    """Make the build at ``html`` readable offline; returns one line per remote resource left (empty
    when the build needs no network)."""
    html = Path(html)
    if not (html / "index.html").exists():
        raise OfflineError(f"{html} has no index.html: build the book first")
    copy_assets(install(cache), html)
    left = []
    for page in sorted(html.rglob("*.html")):
        if VENDOR.as_posix() in page.relative_to(html).as_posix():
            continue
        prefix = os.path.relpath(html / VENDOR, page.parent).replace(os.sep, "/") + "/"
        text = page.read_text(encoding="utf-8")
        new = rewrite(text, prefix)
        if new != text:
            page.write_text(new, encoding="utf-8")
        left += [f"{page.relative_to(html)}: loads {url} from the network (add it to tools/offline/package.json "
                 f"and URLS in tools/offline.py)" for url in dict.fromkeys(remote_resources(new))]
    return left


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["install", "localize"])
    ap.add_argument("html", nargs="?", type=Path, default=ROOT / "_build" / "html")
    ap.add_argument("--cache", type=Path, default=CACHE, help="npm install folder (default: _build/offline_npm)")
    args = ap.parse_args(argv)
    try:
        if args.action == "install":
            print(f"installed into {install(args.cache)}")
            return 0
        left = localize(args.html, args.cache)
    except OfflineError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for line in left:
        print(line)
    print(f"==> offline build: {args.html} serves its own MathJax, reveal.js and icons; "
          f"{len(left)} remote resource(s) left")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

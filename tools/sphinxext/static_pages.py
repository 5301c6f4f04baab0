"""Sphinx extension of the book (loaded by ``_config.yml``'s ``sphinx.local_extensions``).

Drops the ipywidgets state that the executed chapters carry. nbclient records the state of every
widget a chapter *creates* (its ``make_widget()`` demo, before ``viz.show_widget`` decides that a
static page shows a pointer to the static twin instead), and myst-nb writes that state into the
page as a ``<script type="application/vnd.jupyter.widget-state+json">`` of 100-140 kB together
with require.js and the widget manager from a CDN. The book never embeds a live widget (a static
page cannot run one), so every page loses all of it here: myst-nb keeps it as per-page JavaScript
entries named ``ipywidgets_*`` (``myst_nb.sphinx_.NbMetadataCollector``).

It also gives the theme a colour mode on a reader's first visit: pydata-sphinx-theme 0.15 reads
``localStorage["mode"]`` (empty for a new visitor) and logs "Got invalid theme mode: ." as a
console error before resetting it to "auto"; :data:`DEFAULT_MODE_JS` stores "auto" first.

A widget *view* in a cell's output (e.g. a progress bar) is not handled here: the library makes
none on the static pages (``runtime.progress_bar``, ``viz.show_widget``).
"""
from __future__ import annotations

WIDGET_KEY_PREFIX = "ipywidgets"


def drop_widget_state(app, env) -> None:
    """``env-updated``: remove the widget state script and the widget manager of every page."""
    for meta in getattr(env, "nb_metadata", {}).values():
        js = meta.get("js_files")
        if js:
            for key in [k for k in js if k.startswith(WIDGET_KEY_PREFIX)]:
                del js[key]
    return []


#: runs in <head> before the theme's scripts: a first visit starts in the theme's "auto" mode
DEFAULT_MODE_JS = ('try { if (!localStorage.getItem("mode")) { localStorage.setItem("mode", "auto"); } '
                   'document.documentElement.dataset.mode = localStorage.getItem("mode"); } catch (e) {}')


def setup(app):
    app.connect("env-updated", drop_widget_state)
    app.add_js_file(None, body=DEFAULT_MODE_JS, priority=1)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}

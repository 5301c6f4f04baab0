"""Interactive demos of the book, one module per chapter topic.

Each module offers ``make_widget(...)`` (an ipywidgets demo, live in Jupyter and Colab, whose
callback the tests drive directly) and a static twin that still moves in the rendered HTML
(a matplotlib ``to_jshtml`` player or a small-multiples grid).
"""

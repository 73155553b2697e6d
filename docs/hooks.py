"""MkDocs hooks (``hooks:`` in mkdocs.yml): the tutorial's timing figure and table, drawn
when the site is built from the measurements in docs/loop_vs_vectorized.json, which
``python docs/loop_vs_vectorized.py`` writes. So no image is committed, and a new
measurement shows on the next build."""
import importlib.util
import pathlib
import re
import tempfile

from mkdocs.structure.files import File

HERE = pathlib.Path(__file__).resolve().parent
FIGURE = "loop_vs_vectorized.png"          # where tutorial.md links the figure
TABLE = "<!-- loop-vs-vectorized-table -->"  # what tutorial.md has where the table goes
# A Sphinx role as Markdown renders it, ":meth:<code>~a.b</code>": the docstrings use
# them (they read well in help() too); the site shows the name alone, "~" leaving the
# last part, as Sphinx does.
_ROLE = re.compile(r":(?:meth|func|class|mod|attr|data|obj|exc):<code>(~?)([\w.]+)</code>")


def _timing():
    """docs/loop_vs_vectorized.py as a module (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location("loop_vs_vectorized",
                                                  HERE / "loop_vs_vectorized.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def on_files(files, config):
    """Add the figure to the site's files, drawn from the saved measurements."""
    timing = _timing()
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / FIGURE
        timing.draw(timing.load(), path)
        files.append(File.generated(config, FIGURE, content=path.read_bytes()))
    return files


def on_page_content(html, page, config, files):
    """Sphinx roles in the API reference's docstrings shown as code."""
    return _ROLE.sub(lambda m: f"<code>{m[2].rsplit('.', 1)[-1] if m[1] else m[2]}</code>",
                     html)


def on_page_markdown(markdown, page, config, files):
    """Put the table of the saved measurements where the tutorial asks for it."""
    if TABLE in markdown:
        timing = _timing()
        markdown = markdown.replace(TABLE, timing.table(timing.load()))
    return markdown

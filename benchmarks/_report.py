"""Results tables: printed while a benchmark runs and, with ``--markdown PATH``, written as GitHub
markdown by the command that measured them, so documentation can include the file instead of
retyping its numbers."""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

from _workspace import user_path


def add_markdown_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--markdown",
        type=user_path,
        metavar="PATH",
        help="Also write the results table(s) as GitHub markdown to PATH, headed by the command that wrote them.",
    )


class Table:
    """A results table, printed row by row as fixed-width text and kept for :func:`write_markdown`.

    ``columns`` maps each header to the format spec of its cells (``">8.2f"``, ``"<12"``); a header
    takes its spec's alignment and width, and so does a cell given as text (``""`` for none). The
    markdown holds the cells exactly as printed, aligned as printed.
    """

    def __init__(self, columns: dict[str, str]):
        self.columns = columns
        self.rows: list[list[str]] = []
        self.lines: list[str] = []

    @staticmethod
    def _width(spec: str) -> str:
        return re.match(r"[<>^]?\d*", spec).group()

    def header(self) -> str:
        return " ".join(f"{name:{self._width(spec)}}" for name, spec in self.columns.items()).rstrip()

    def row(self, *cells) -> str:
        """Keep one row; the line to print."""
        texts = [
            f"{cell:{self._width(spec) if isinstance(cell, str) else spec}}"
            for cell, spec in zip(cells, self.columns.values(), strict=True)
        ]
        self.rows.append([text.strip() for text in texts])
        self.lines.append(" ".join(texts).rstrip())
        return self.lines[-1]

    def text(self) -> str:
        """The header and every row, as printed."""
        return "\n".join([self.header(), *self.lines])

    def markdown(self) -> str:
        import pandas as pd

        align = ["left" if spec.startswith("<") else "right" for spec in self.columns.values()]
        cells = [[cell.replace("|", "\\|") for cell in row] for row in self.rows]
        frame = pd.DataFrame(cells, columns=list(self.columns))
        return frame.to_markdown(index=False, disable_numparse=True, colalign=align)


def command() -> str:
    """The command running now, as typed from the project folder."""
    return shlex.join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]])


def section_markers(script: str) -> tuple[str, str]:
    """The comments that fence what ``benchmarks/<script>`` writes inside a longer page."""
    return f"<!-- begin: benchmarks/{script} -->", f"<!-- end: benchmarks/{script} -->"


def write_markdown(path: Path | None, *parts: str | Table | list[str]) -> None:
    """With ``--markdown PATH``: write ``parts`` to PATH, after a comment naming the command that wrote
    it: a text is a paragraph, a list of texts a bulleted list, a :class:`Table` its markdown.

    When PATH already holds this script's :func:`section_markers` (a page such as BENCHMARKS.md),
    only what lies between them is replaced, so the page's tables are the command's own output."""
    if path is None:
        return
    blocks = [f"<!-- written by: {command()} -->"]
    for part in filter(None, parts):
        if isinstance(part, Table):
            blocks.append(part.markdown())
        else:
            blocks.append("\n".join(f"* {line}" for line in part) if isinstance(part, list) else part.strip())
    text = "\n\n".join(blocks) + "\n"
    begin, end = section_markers(Path(sys.argv[0]).name)
    page = path.read_text() if path.is_file() else ""
    if begin in page and end in page.split(begin, 1)[1]:
        before, rest = page.split(begin, 1)
        text = f"{before}{begin}\n{text}{end}{rest.split(end, 1)[1]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"markdown written to {path}")

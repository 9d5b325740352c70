"""Rich output for people (`--format table`). Only formats: never computes.

Every table is laid out for the width it is printed at (`Fitted`), so that a number or a
header is never split across lines: the whole table when it fits; else its columns in
labelled blocks (the row labels repeated); else its numbers to 6 significant digits
(said under the table); else one line per entry.
"""

from __future__ import annotations

from math import ceil
from typing import Callable, NamedTuple, Sequence

import numpy as np
from rich import box
from rich.cells import cell_len
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from .api import Program, Trace
from .formats import Report
from .graph import shape_label
from .tape_view import EDGE, array_text

#: How many points a table shows before it says how many more there are.
SHOWN_POINTS = 20
SHOWN_MATRICES = 5
#: Significant digits of the numbers in tables; the shorter one only when the full does not fit.
DIGITS = 10
SHORT_DIGITS = 6


def _num(x: float | None, digits: int = DIGITS) -> str:
    if x is None:
        return ""
    return format(x, f".{digits}g")


class Column(NamedTuple):
    """One column of a `Fitted` table.

    A cell is a number (float, or None for an empty cell), a str or Text, or a function of
    the significant digits that returns the cell's text (numbers inside text). `digits`
    caps the digits of the column's numbers (3 for errors). A `wrap` column is text that
    may wrap at its spaces, never inside a word; every other cell stays on one line."""
    header: str
    cells: Sequence
    justify: str = "right"
    style: str | None = None
    digits: int = DIGITS
    wrap: bool = False

    def texts(self, digits: int) -> list[Text]:
        digits = min(digits, self.digits)
        out = []
        for cell in self.cells:
            if isinstance(cell, Text):
                out.append(cell)
            elif isinstance(cell, str):
                out.append(Text(cell))
            elif callable(cell):
                out.append(Text(cell(digits)))
            else:
                out.append(Text(_num(cell, digits)))
        return out


def _widths(column: Column, texts: list[Text]) -> tuple[int, int]:
    """(natural, least) width of a column's content: a header never wraps, nor a word."""
    natural = max([cell_len(column.header)] + [t.cell_len for t in texts])
    if not column.wrap:
        return natural, natural
    words = [cell_len(w) for t in texts for w in t.plain.split()]
    return natural, max([cell_len(column.header)] + words)


def _table_width(content: int, count: int) -> int:
    """The printed width of a SIMPLE_HEAD table: content, padding 1+1 per column, and
    the edges and separators (1 each)."""
    return content + 3 * count + 1


class Fitted:
    """A table that lays itself out for the width it is printed at (see the module's
    docstring). `labels` are the columns that name the rows (repeated in every block);
    `columns` the others, in order. A renderable: build it, let the caller print it."""

    def __init__(self, title: str | Text | None, labels: list[Column], columns: list[Column]):
        self.title, self.labels, self.columns = title, labels, columns

    def __rich_console__(self, console, options):
        yield from self.layout(options.max_width)

    def layout(self, width: int) -> list:
        parts = [] if self.title is None else [
            self.title if isinstance(self.title, Text) else Text(self.title, style="table.title")]
        n = len(self.columns)
        few = max(1, ceil(n / 2))        # blocks of two columns or more, on average
        packs: dict = {}
        for fewest in (few, n):
            for digits in (DIGITS, SHORT_DIGITS):
                if digits not in packs:
                    packs[digits] = self._pack(width, digits)
                blocks = packs[digits]
                if blocks is not None and len(blocks) <= fewest:
                    return parts + self._blocks(blocks, digits, width)
        return parts + self._lines()

    def _blocks(self, blocks, digits: int, width: int) -> list:
        parts = []
        for start, stop, widths in blocks:
            if len(blocks) > 1:
                headers = [c.header for c in self.columns[start:stop]]
                shown = (", ".join(headers) if len(headers) <= 2
                         else f"{headers[0]} … {headers[-1]}")
                where = f"column {stop}" if stop == start + 1 else f"columns {start + 1}–{stop}"
                parts.append(Text(f"{where} of {len(self.columns)}: {shown}", style="dim"))
            parts.append(self._table(start, stop, widths, digits))
        if digits < DIGITS and any(c.digits > digits for c in self.columns):
            parts.append(Text(f"(numbers rounded to {digits} significant digits to fit {width} "
                              "columns; --format plain or json gives every digit)", style="dim"))
        return parts

    def _pack(self, width: int, digits: int):
        """The data columns in consecutive blocks that fit `width` beside the labels, as
        few blocks as fit and of even counts where they can be: [(start, stop, content
        widths of labels + block)], or None if one column alone does not fit."""
        labels = [_widths(c, c.texts(digits)) for c in self.labels]
        sizes = [_widths(c, c.texts(digits)) for c in self.columns]
        bounds = _blocks(labels, sizes, width, len(sizes))
        if bounds is not None and len(bounds) > 1:      # 5 columns as 3 + 2, not 4 + 1
            even = _blocks(labels, sizes, width, ceil(len(sizes) / len(bounds)))
            bounds = even if even is not None and len(even) == len(bounds) else bounds
        if bounds is None:
            return None
        return [(start, stop, _allot(labels + sizes[start:stop],
                                     [c.wrap for c in self.labels + self.columns[start:stop]],
                                     width)) for start, stop in bounds]

    def _table(self, start: int, stop: int, widths: list[int], digits: int) -> Table:
        columns = self.labels + self.columns[start:stop]
        table = Table(box=box.SIMPLE_HEAD)
        cells = []
        for column, width in zip(columns, widths):
            table.add_column(Text(column.header), justify=column.justify, style=column.style,
                             width=width, no_wrap=not column.wrap, overflow="fold")
            cells.append(column.texts(digits))
        for row in zip(*cells):
            table.add_row(*row)
        return table

    def _lines(self) -> list[Text]:
        """The last resort: one line per entry, `label header = cell` (wrapping only at
        spaces)."""
        labels = [c.texts(DIGITS) for c in self.labels]
        columns = [c.texts(DIGITS) for c in self.columns]
        lines = []
        for row in range(len(self.labels[0].cells) if self.labels else 0):
            name = " ".join(texts[row].plain for texts in labels if texts[row].plain)
            for column, texts in zip(self.columns, columns):
                if texts[row].plain:
                    lines.append(Text(f"{name} {column.header} = ").append_text(texts[row]))
        return lines


def _blocks(labels: list[tuple[int, int]], sizes: list[tuple[int, int]], width: int,
            most: int) -> list[tuple[int, int]] | None:
    """(start, stop) of consecutive blocks of at most `most` columns, each as many as fit
    beside the labels at their least widths; None if a column alone does not fit."""
    least_labels = sum(least for _, least in labels)
    bounds, start = [], 0
    while start < len(sizes) or not bounds:
        stop, least = start, least_labels
        while stop < len(sizes) and stop - start < most and _table_width(
                least + sizes[stop][1], len(labels) + stop - start + 1) <= width:
            least += sizes[stop][1]
            stop += 1
        if stop == start and start < len(sizes):
            return None
        bounds.append((start, stop))
        start = stop
        if not sizes:
            break
    return bounds


def _allot(sizes: list[tuple[int, int]], wraps: list[bool], width: int) -> list[int]:
    """Content widths: natural where the table fits, else the widest wrapping columns
    narrowed (never below their longest word) until it does."""
    widths = [natural for natural, _ in sizes]
    excess = _table_width(sum(widths), len(widths)) - width
    while excess > 0:
        slack = [j for j, w in enumerate(wraps) if w and widths[j] > sizes[j][1]]
        if not slack:
            break
        j = max(slack, key=widths.__getitem__)
        others = max((widths[k] for k in slack if k != j), default=0)
        target = max(sizes[j][1], others, widths[j] - excess)
        if target == widths[j]:
            target -= 1
        excess -= widths[j] - target
        widths[j] = target
    return widths


def _at_text(report: Report, row: int) -> str:
    return ", ".join(f"{n}={_num(v)}" for n, v in zip(report.variables, report.at[row]))


def _more(count: int, shown: int) -> Text | None:
    if count <= shown:
        return None
    return Text(f"… and {count - shown} more points (use --format csv, json or -o for all)",
                style="dim")


def _bad_row(report: Report, row: int) -> Text:
    return Text(f"row {row + 1}: {report.bad_rows[row]}", style="red")


def _points_table(report: Report, row_numbers: list[int]) -> Fitted:
    """One row per point: the variables, then every result of the command, flattened."""
    headers, styles, values = [], [], []
    for name in report.variables:
        headers.append(name)
        styles.append("cyan")
    numbers = [list(report.at[row]) for row in row_numbers]
    for key, array in report.fields():
        for header in report.headers(key, "∂", "∂²"):
            headers.append(header)
            styles.append("bold" if key == "value" else None)
        for numbers_of_row, row in zip(numbers, row_numbers):
            numbers_of_row += list(np.ravel(array[row]))
    for numbers_of_row, row in zip(numbers, row_numbers):
        if row in report.bad_rows:
            numbers_of_row[:] = [Text("error (below)", style="red")] + [None] * (len(headers) - 1)
    columns = [Column(header, [cells[j] for cells in numbers], style=style)
               for j, (header, style) in enumerate(zip(headers, styles))]
    rows = Column("row", [str(row + 1) for row in row_numbers], style="dim")
    return Fitted(None, [rows], columns)


def _gradient_table(report: Report, row: int) -> Fitted:
    out = report.outputs[0]
    at = dict(zip(report.variables, report.at[row]))
    return Fitted(f"{out} = {_num(report.value[row, 0])}",
                  [Column("input", report.inputs, justify="left")],
                  [Column("value", [at.get(name) for name in report.inputs], style="cyan"),
                   Column(f"∂{out}/∂input", list(report.jacobian[row, 0]), style="bold")])


def _jacobian_table(report: Report, row: int) -> Fitted:
    title = f"Jacobian at {_at_text(report, row)}" if report.variables else "Jacobian"
    return Fitted(title, [Column("output", report.outputs, justify="left")],
                  [Column("value", list(report.value[row]), style="cyan")]
                  + [Column(f"∂/∂{name}", list(report.jacobian[row, :, j]), style="bold")
                     for j, name in enumerate(report.inputs)])


def _hessian_table(report: Report, row: int) -> Fitted:
    out = report.outputs[0]
    return Fitted(f"Hessian of {out}",
                  [Column("", [f"∂{out}/∂{name}" for name in report.inputs], justify="left")],
                  [Column(f"∂/∂{name}", list(report.hessian[row, :, j]), style="bold")
                   for j, name in enumerate(report.inputs)])


def _one_point(report: Report, row: int) -> list:
    """The views of one point: gradient (and Hessian), or the Jacobian matrix."""
    if row in report.bad_rows:
        return [_bad_row(report, row)]
    if report.command == "grad":
        return [_gradient_table(report, row)]
    if report.command == "hess":
        return [_gradient_table(report, row), _hessian_table(report, row)]
    return [_jacobian_table(report, row)]


def report_renderable(report: Report, total: int | None = None):
    """The first points of `report` (the first chunk of `total` points) for people."""
    count = report.count if total is None else total
    if report.command in ("eval", "jvp", "vjp", "hvp") or (count > 1 and report.command == "grad"):
        shown = list(range(min(report.count, SHOWN_POINTS)))
        parts = [_points_table(report, shown)]
        parts += [_bad_row(report, row) for row in shown if row in report.bad_rows]
        more = _more(count, SHOWN_POINTS)
    else:
        parts = [part for row in range(min(report.count, SHOWN_MATRICES))
                 for part in _one_point(report, row)]
        more = _more(count, SHOWN_MATRICES)
    if more is not None:
        parts.append(more)
    return Group(*parts)


def _console() -> Console:
    return Console(highlight=False)


def render_report(report: Report, total: int | None = None) -> None:
    _console().print(report_renderable(report, total))


def _partials(row: dict) -> Callable[[int], str]:
    return lambda digits: ", ".join(f"∂/∂{a}={_value(p)(digits)}" for a, p in
                                    zip(row["args"], row["partials"] or ()) if p is not None)


def _value(x) -> Callable[[int], str]:
    """A cell for a number or an array (its short form, tape_view.array_text)."""
    if x is None or type(x) is float:
        return lambda digits: _num(x, digits)
    return lambda digits: array_text(x, EDGE, lambda v: _num(float(v), digits))


def tape_renderable(program: Program, outputs: list[str], trace: Trace | None, rows) -> Group:
    arrays = bool(rows) and "shape" in rows[0]
    sources = []
    for row in rows:
        source = Text(row["text"])
        if row["names"]:
            source.append("  → " + ", ".join(row["names"]), style="green")
        sources.append(source)
    columns = [Column("op", [row["op"] for row in rows], justify="left", style="bold")]
    if arrays:
        columns.append(Column("shape", [shape_label(row["shape"]) for row in rows],
                              justify="left"))
    columns += [Column("args", [", ".join(row["args"]) for row in rows], justify="left",
                       wrap=True),
                Column("source", sources, justify="left", wrap=True)]
    if trace is not None:
        components = trace.output_components or outputs
        columns += [Column("value", [_value(row["value"]) for row in rows], style="cyan"),
                    Column("local partials", [_partials(row) for row in rows],
                           justify="left", wrap=True)]
        columns += [Column(f"adjoint ∂{out}/∂entry", [_value(row["adjoints"][k]) for row in rows],
                           style="bold") for k, out in enumerate(components)]
    entries = Column("entry", [row["entry"] for row in rows], justify="left", style="dim")
    parts = [Fitted("Tape (Wengert list): one entry per primitive, in evaluation order",
                    [entries], columns)]
    if trace is not None and trace.inputs:
        parts.append(Text(
            "\nReverse mode sweeps the tape from the last entry to the first: each entry's adjoint "
            "is the sum over its users of (user's adjoint) × (user's local partial). "
            "The adjoints of the inputs are the Jacobian's rows.\n", style="dim"))
        parts.append(Fitted("Jacobian", [Column("output", components, justify="left")],
                            [Column(f"∂/∂{name}", list(trace.jacobian[:, j]), style="bold")
                             for j, name in enumerate(trace.input_components or trace.inputs)]))
    return Group(*parts)


def render_tape(program: Program, outputs: list[str], trace: Trace | None, rows) -> None:
    _console().print(tape_renderable(program, outputs, trace, rows))


_EXPLAIN_HEADERS = ("source", "adjoint ḡ", "→ argument", "partial", "contribution")


def _sweep_table(output: str, rows: list[list], arrays: bool = False) -> Fitted:
    cells = list(zip(*rows)) if rows else [()] * 6
    headers = _EXPLAIN_HEADERS
    if arrays:   # a structural entry's cell is the linear map it applies (text)
        headers = tuple("partial or map" if h == "partial" else h for h in headers)
    texts = ("source", "partial or map")
    columns = [Column(header, list(column), justify="left" if header in texts else "right",
                      wrap=header in texts + ("→ argument",))
               for header, column in zip(headers, cells[1:])]
    return Fitted(f"Backward sweep for {output}: from the last entry to the first, "
                  f"seeded with ∂{output}/∂{output} = 1",
                  [Column("step", list(cells[0]), justify="left")], columns)


def explain_renderable(steps: list[dict]) -> Group:
    parts, rows = [], []
    for step in steps:
        output = step["output"]
        if "gradient" in step:
            if rows:
                parts.append(_sweep_table(output, rows, arrays))
            gradient = ", ".join(f"∂{output}/∂{n} = {_num(v)}" for n, v in step["gradient"].items())
            parts.append(Text(f"gradient of {output} (a row of the Jacobian): {gradient}\n",
                              style="bold"))
            rows = []
            continue
        first = True
        arrays = "shape" in step
        shape = f" {shape_label(step['shape'])}" if arrays else ""
        for send in step["sends"] or [None]:
            cells = ([f"{step['step']}. {step['entry']} {step['op']}{shape}", Text(step["text"]),
                      _value(step["adjoint"])] if first else ["", "", None])
            cells += ([f"{send['to']} {send['to_text']}", _how(send), _value(send["contribution"])]
                      if send is not None else ["", None, None])
            rows.append(cells)
            first = False
    parts.append(Text("Each entry's adjoint is the sum of the contributions sent to it by "
                      "later entries; the inputs' adjoints are the gradient.", style="dim"))
    return Group(*parts)


def _how(send: dict):
    """The partial of an elementwise entry (with `, summed to [3]` where its argument was
    broadcast), or the linear map a structural entry applies to ḡ."""
    if send["partial"] is None:
        return send.get("rule")
    partial = _value(send["partial"])
    return lambda digits: partial(digits) + send.get("summed", "")


def render_explain(steps: list[dict]) -> None:
    _console().print(explain_renderable(steps))

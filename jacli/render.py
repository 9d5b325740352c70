"""Rich output for people (`--format table`). Only formats: never computes."""

from __future__ import annotations

import numpy as np
from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from .api import Program, Trace
from .formats import Report

#: How many points a table shows before it says how many more there are.
SHOWN_POINTS = 20
SHOWN_MATRICES = 5


def _table(**options) -> Table:
    """A table whose cells wrap (fold) instead of ending in '…': numbers are never cut."""
    return Table(box=box.SIMPLE_HEAD, title_justify="left", **options)


def _column(table: Table, header: str, **options) -> None:
    table.add_column(header, overflow="fold", **options)


def _num(x: float | None, digits: int = 10) -> str:
    if x is None:
        return ""
    return format(x, f".{digits}g")


def _at_text(report: Report, row: int) -> str:
    return ", ".join(f"{n}={_num(v)}" for n, v in zip(report.variables, report.at[row]))


def _more(count: int, shown: int) -> Text | None:
    if count <= shown:
        return None
    return Text(f"… and {count - shown} more points (use --format csv, json or -o for all)",
                style="dim")


def _bad_row(report: Report, row: int) -> Text:
    return Text(f"row {row + 1}: {report.bad_rows[row]}", style="red")


def _points_table(report: Report, row_numbers: list[int]) -> Table:
    """One row per point: the variables, then every result of the command, flattened."""
    table = _table()
    _column(table, "row", justify="right", style="dim")
    for name in report.variables:
        _column(table, name, justify="right", style="cyan")
    fields = report.fields()
    for key, _ in fields:
        for header in report.headers(key, "∂", "∂²"):
            _column(table, header, justify="right", style="bold" if key == "value" else None)
    for row in row_numbers:
        if row in report.bad_rows:
            table.add_row(str(row + 1), Text("error (below)", style="red"))
            continue
        numbers = list(report.at[row])
        for _, array in fields:
            numbers += list(np.ravel(array[row]))
        table.add_row(str(row + 1), *map(_num, numbers))
    return table


def _gradient_table(report: Report, row: int) -> Table:
    out = report.outputs[0]
    table = _table(title=f"{out} = {_num(report.value[row, 0])}")
    _column(table, "input")
    _column(table, "value", justify="right", style="cyan")
    _column(table, f"∂{out}/∂input", justify="right", style="bold")
    at = dict(zip(report.variables, report.at[row]))
    for j, name in enumerate(report.inputs):
        table.add_row(name, _num(at.get(name)), _num(report.jacobian[row, 0, j]))
    return table


def _jacobian_table(report: Report, row: int) -> Table:
    title = f"Jacobian at {_at_text(report, row)}" if report.variables else "Jacobian"
    table = _table(title=title)
    _column(table, "output")
    _column(table, "value", justify="right", style="cyan")
    for name in report.inputs:
        _column(table, f"∂/∂{name}", justify="right", style="bold")
    for k, out in enumerate(report.outputs):
        table.add_row(out, _num(report.value[row, k]),
                      *map(_num, report.jacobian[row, k]))
    return table


def _hessian_table(report: Report, row: int) -> Table:
    out = report.outputs[0]
    table = _table(title=f"Hessian of {out}")
    _column(table, "")
    for name in report.inputs:
        _column(table, f"∂/∂{name}", justify="right", style="bold")
    for i, name in enumerate(report.inputs):
        table.add_row(f"∂{out}/∂{name}", *map(_num, report.hessian[row, i]))
    return table


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
    if report.command in ("eval", "jvp", "vjp") or (count > 1 and report.command == "grad"):
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


def tape_renderable(program: Program, outputs: list[str], trace: Trace | None, rows) -> Group:
    title = "Tape (Wengert list): one entry per primitive, in evaluation order"
    table = _table(title=title)
    _column(table, "entry", style="dim")
    _column(table, "op", style="bold")
    _column(table, "args")
    _column(table, "source")
    if trace is not None:
        _column(table, "value", justify="right", style="cyan")
        _column(table, "local partials ∂entry/∂arg", justify="left")
        for out in outputs:
            _column(table, f"adjoint ∂{out}/∂entry", justify="right", style="bold")
    for row in rows:
        source = Text(row["text"])
        if row["names"]:
            source.append("  → " + ", ".join(row["names"]), style="green")
        cells = [row["entry"], row["op"], ", ".join(row["args"]), source]
        if trace is not None:
            # 6 digits keep the many columns of the tape readable; plain/json have all 17.
            partials = ", ".join(f"∂/∂{a}={_num(p, 6)}" for a, p in
                                 zip(row["args"], row["partials"]) if p is not None)
            cells += [_num(row["value"], 6), partials, *[_num(a, 6) for a in row["adjoints"]]]
        table.add_row(*cells)
    parts = [table]
    if trace is not None:
        parts.append(Text(
            "\nReverse mode sweeps the tape from the last entry to the first: each entry's adjoint "
            "is the sum over its users of (user's adjoint) × (user's local partial). "
            "The adjoints of the inputs are the Jacobian's rows.\n", style="dim"))
        jacobian = _table(title="Jacobian")
        _column(jacobian, "output")
        for name in trace.inputs:
            _column(jacobian, f"∂/∂{name}", justify="right", style="bold")
        for k, out in enumerate(outputs):
            jacobian.add_row(out, *map(_num, trace.jacobian[k]))
        parts.append(jacobian)
    return Group(*parts)


def render_tape(program: Program, outputs: list[str], trace: Trace | None, rows) -> None:
    _console().print(tape_renderable(program, outputs, trace, rows))


def explain_renderable(steps: list[dict]) -> Group:
    parts = []
    table = None
    for step in steps:
        output = step["output"]
        if "gradient" in step:
            gradient = ", ".join(f"∂{output}/∂{n} = {_num(v)}" for n, v in step["gradient"].items())
            parts += [table, Text(f"gradient of {output} (a row of the Jacobian): {gradient}\n",
                                  style="bold")]
            table = None
            continue
        if table is None:
            table = _table(title=f"Backward sweep for {output}: from the last entry to the first, "
                                 f"seeded with ∂{output}/∂{output} = 1")
            for header in ("step", "entry", "source", "adjoint ḡ", "→ argument",
                           "local partial", "contribution ḡ × partial"):
                _column(table, header, justify="right" if header != "source" else "left")
        first = True
        for send in step["sends"] or [None]:
            cells = ([str(step["step"]), f"{step['entry']} {step['op']}", Text(step["text"]),
                      _num(step["adjoint"])] if first else ["", "", "", ""])
            if send is not None:
                cells += [f"{send['to']} {send['to_text']}", _num(send["partial"]),
                          _num(send["contribution"])]
            table.add_row(*cells)
            first = False
    parts.append(Text("Each entry's adjoint is the sum of the contributions sent to it by "
                      "later entries; the inputs' adjoints are the gradient.", style="dim"))
    return Group(*[p for p in parts if p is not None])


def render_explain(steps: list[dict]) -> None:
    _console().print(explain_renderable(steps))

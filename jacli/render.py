"""Rich output for people (`--format table`). Only formats: never computes."""

from __future__ import annotations

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from .api import Program, Trace
from .formats import Report

#: How many points a table shows before it says how many more there are.
SHOWN_POINTS = 20
SHOWN_MATRICES = 5


def _num(x: float | None) -> str:
    if x is None:
        return ""
    return format(x, ".10g")


def _at_text(report: Report, row: int) -> str:
    return ", ".join(f"{n}={_num(v)}" for n, v in zip(report.variables, report.at[row]))


def _more(count: int, shown: int) -> Text | None:
    if count <= shown:
        return None
    return Text(f"… and {count - shown} more points (use --format csv, json or -o for all)",
                style="dim")


def _bad_row(report: Report, row: int) -> Text:
    return Text(f"row {row + 1}: {report.bad_rows[row]}", style="red")


def _points_table(report: Report, derivative_headers: list[str], row_numbers: list[int]) -> Table:
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("row", justify="right", style="dim")
    for name in report.variables:
        table.add_column(name, justify="right", style="cyan")
    for name in report.outputs:
        table.add_column(name, justify="right", style="bold")
    for header in derivative_headers:
        table.add_column(header, justify="right")
    for row in row_numbers:
        if row in report.bad_rows:
            table.add_row(str(row + 1), _bad_row(report, row))
            continue
        numbers = list(report.at[row]) + list(report.value[row])
        if derivative_headers:
            numbers += list(report.jacobian[row].reshape(-1))
        table.add_row(str(row + 1), *map(_num, numbers))
    return table


def _gradient_table(report: Report, row: int) -> Table:
    out = report.outputs[0]
    table = Table(title=f"{out} = {_num(report.value[row, 0])}", box=box.SIMPLE_HEAD,
                  title_justify="left")
    table.add_column("input")
    table.add_column("value", justify="right", style="cyan")
    table.add_column(f"∂{out}/∂input", justify="right", style="bold")
    at = dict(zip(report.variables, report.at[row]))
    for j, name in enumerate(report.inputs):
        table.add_row(f"∂{out}/∂{name}", _num(at.get(name)), _num(report.jacobian[row, 0, j]))
    return table


def _jacobian_table(report: Report, row: int) -> Table:
    title = f"Jacobian at {_at_text(report, row)}" if report.variables else "Jacobian"
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("output")
    table.add_column("value", justify="right", style="cyan")
    for name in report.inputs:
        table.add_column(f"∂/∂{name}", justify="right", style="bold")
    for k, out in enumerate(report.outputs):
        table.add_row(out, _num(report.value[row, k]),
                      *map(_num, report.jacobian[row, k]))
    return table


def report_renderable(report: Report):
    count = report.count
    if report.command == "eval" or (count > 1 and report.command == "grad"):
        headers = ([f"∂{report.outputs[0]}/∂{i}" for i in report.inputs]
                   if report.command == "grad" else [])
        shown = list(range(min(count, SHOWN_POINTS)))
        parts = [_points_table(report, headers, shown)]
        more = _more(count, SHOWN_POINTS)
    elif report.command == "grad":
        parts = [_bad_row(report, 0) if 0 in report.bad_rows else _gradient_table(report, 0)]
        more = None
    else:
        parts = [_bad_row(report, row) if row in report.bad_rows
                 else _jacobian_table(report, row) for row in range(min(count, SHOWN_MATRICES))]
        more = _more(count, SHOWN_MATRICES)
    if more is not None:
        parts.append(more)
    return Group(*parts)


def _console() -> Console:
    return Console(highlight=False)


def render_report(report: Report) -> None:
    _console().print(report_renderable(report))


def tape_renderable(program: Program, outputs: list[str], trace: Trace | None, rows) -> Group:
    title = "Tape (Wengert list): one entry per primitive, in evaluation order"
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("entry", style="dim")
    table.add_column("op", style="bold")
    table.add_column("args")
    table.add_column("source")
    if trace is not None:
        table.add_column("value", justify="right", style="cyan")
        table.add_column("local partials ∂entry/∂arg", justify="left")
        for out in outputs:
            table.add_column(f"adjoint ∂{out}/∂entry", justify="right", style="bold")
    for row in rows:
        source = Text(row["text"])
        if row["names"]:
            source.append("  → " + ", ".join(row["names"]), style="green")
        cells = [row["entry"], row["op"], ", ".join(row["args"]), source]
        if trace is not None:
            partials = ", ".join(f"∂/∂{a}={_num(p)}" for a, p in zip(row["args"], row["partials"])
                                 if p is not None)
            cells += [_num(row["value"]), partials, *[_num(a) for a in row["adjoints"]]]
        table.add_row(*cells)
    parts = [table]
    if trace is not None:
        parts.append(Text(
            "Reverse mode sweeps the tape from the last entry to the first: each entry's adjoint "
            "is the sum over its users of (user's adjoint) × (user's local partial). "
            "The adjoints of the inputs are the Jacobian's rows.", style="dim"))
        jacobian = Table(title="Jacobian", box=box.SIMPLE_HEAD, title_justify="left")
        jacobian.add_column("output")
        for name in trace.inputs:
            jacobian.add_column(f"∂/∂{name}", justify="right", style="bold")
        for k, out in enumerate(outputs):
            jacobian.add_row(out, *map(_num, trace.jacobian[k]))
        parts.append(jacobian)
    return Group(*parts)


def render_tape(program: Program, outputs: list[str], trace: Trace | None, rows) -> None:
    _console().print(tape_renderable(program, outputs, trace, rows))

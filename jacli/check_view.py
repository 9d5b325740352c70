"""Writing the result of `jacli check`: plain, JSON Lines, CSV, and a Rich table.

Formatting only: the numbers come from jacli.check. Every number is written as
`repr(float)`; in JSON non-finite numbers are the strings "nan", "inf", "-inf".
One line (or row) per point, in order; a bad row of `--points` keeps its place.

plain, one line per point, three fields separated by one space:

    MAX_ABS_ERROR MAX_REL_ERROR STATUS

STATUS is `ok` (every entry within tolerance), `FAIL` (some entry over it, or a kink),
or `error` (a bad row of --points: both numbers are then `nan`). So

    read abs rel status <<< "$(jacli check 'x^2*y' --at x=2,y=3 --format plain)"

works. A nan error (AD or FD nan where the other is not) is written `nan`: never hidden.

json, one object per point (JSON Lines):

    {"inputs": [...], "outputs": [...], "at": {"x": 1.0, ...}, "ok": true,
     "max_abs_error": 2.4e-11, "max_rel_error": 2.4e-11,
     "worst": {"output": "f1", "input": "y", "ad": 1.0, "fd": 1.00000000002,
               "abs_error": 2.4e-11, "rel_error": 2.4e-11},
     "failures": [{"output", "input", "ad", "fd", "abs_error", "rel_error", "reason"}, ...]}

`worst` is the entry furthest over its tolerance (a failing one if any), null for an
empty Jacobian; `failures` lists every failing entry, row-major. A bad row of --points is
`{"row": k, "error": "..."}` as for every command.

csv: a header, then one row per point:

    <variables...>,ok,max_abs_error,max_rel_error,worst_output,worst_input

`ok` is `true` or `false`; a bad row has `false`, every number `nan` and empty names.
"""

from __future__ import annotations

import json
from typing import Mapping, Sequence, TextIO

import numpy as np

from .check import KINK, KINK_NEAR, JUMP, NOT_FINITE, OK, CheckResult, explain_failure
from .formats import _json_value, _nest, json_number

#: How many points the Rich view shows a table for.
SHOWN_POINTS = 5

_SHORT_REASON = {KINK: "kink", KINK_NEAR: "kink nearby", JUMP: "jump", NOT_FINITE: "not finite"}


def _layout(result: CheckResult, variables: Sequence[str] | None, at_rows,
            bad_rows: Mapping[int, str] | None):
    """(variables, at rows (total, k), bad rows, per output row: the result's point or None)."""
    bad = dict(bad_rows or {})
    if variables is None:
        variables = list(result.at)
        at_rows = (np.column_stack([result.at[v] for v in variables]) if variables
                   else np.empty((result.count, 0)))
    total = result.count + len(bad)
    if at_rows is None:
        at_rows = np.full((total, len(variables)), np.nan)
    at_rows = np.asarray(at_rows, dtype=float)
    if at_rows.ndim != 2 or at_rows.shape[1] != len(variables):
        raise ValueError(f"at_rows must be (rows, {len(variables)}): one column per variable")
    if bad and len(at_rows) == result.count:     # only the good rows given: put them in place
        full = np.full((total, len(variables)), np.nan)
        full[[r for r in range(total) if r not in bad]] = at_rows
        at_rows = full
    if len(at_rows) != total:
        raise ValueError(f"{len(at_rows)} rows of values for {total} points")
    index, points = 0, []
    for row in range(total):
        if row in bad:
            points.append(None)
        else:
            points.append(index)
            index += 1
    return list(variables), at_rows, bad, points


def write_check(result: CheckResult, fmt: str, out: TextIO,
                variables: Sequence[str] | None = None, at_rows=None,
                bad_rows: Mapping[int, str] | None = None, first_row: int = 0,
                header: bool = True) -> None:
    """Write `result` in `fmt` (plain, json or csv) to `out`.

    `variables` and `at_rows` (total rows x len(variables)) are what `at` shows, as in
    formats.Report; by default every variable of the checked point. `bad_rows` maps the
    0-based numbers of unreadable --points rows to their problem: those rows keep their
    place; `result` then holds the good rows only, in order, and `at_rows` may have all
    rows or only the good ones. A batch written chunk by chunk gives each chunk's
    `first_row` (0-based, for the row numbers of bad rows), and `header` only with the
    first."""
    variables, at_rows, bad, points = _layout(result, variables, at_rows, bad_rows)
    {"plain": _write_plain, "json": _write_json, "csv": _write_csv}[fmt](
        result, out, variables, at_rows, bad, points, first_row, header)


def _write_plain(result, out, variables, at_rows, bad, points, first_row=0,
                 header=True) -> None:
    max_abs, max_rel = result.max_abs_error.tolist(), result.max_rel_error.tolist()
    point_ok = result.point_ok.tolist()
    for b in points:
        if b is None:
            out.write("nan nan error\n")
        else:
            out.write(f"{max_abs[b]!r} {max_rel[b]!r} {'ok' if point_ok[b] else 'FAIL'}\n")


def _entry_json(entry, reason: str | None = None) -> str:
    text = (f'{{"output": {json.dumps(entry.output)}, "input": {json.dumps(entry.input)}, '
            f'"ad": {json_number(entry.ad)}, "fd": {json_number(entry.fd)}, '
            f'"abs_error": {json_number(entry.abs_error)}, '
            f'"rel_error": {json_number(entry.rel_error)}')
    if reason is not None:
        text += f', "reason": {json.dumps(reason)}'
    return text + "}"


def _write_json(result, out, variables, at_rows, bad, points, first_row=0,
                header=True) -> None:
    head = (f'{{"inputs": {json.dumps(result.inputs)}, '
            f'"outputs": {json.dumps(result.outputs)}, ')
    names = [json.dumps(name) for name in variables]
    max_abs, max_rel = result.max_abs_error.tolist(), result.max_rel_error.tolist()
    point_ok = result.point_ok.tolist()
    rows = at_rows.tolist()
    nested, tail = _array_layout(result, variables)
    if nested is not None:   # as the other commands: `at` nested per variable, `shapes`
        names = [json.dumps(name) for name in nested]
    for row, b in enumerate(points):
        if b is None:
            out.write(json.dumps({"row": first_row + row + 1, "error": bad[row]}) + "\n")
            continue
        if nested is None:
            at = ", ".join(f"{n}: {json_number(v)}" for n, v in zip(names, rows[row]))
        else:
            at = ", ".join(f"{n}: {_json_value(v)}" for n, v in
                           zip(names, _nest(rows[row], nested)))
        worst = result.worst(b)
        failures = ", ".join(_entry_json(f, f.reason) for f in result.failures(b))
        out.write(f'{head}"at": {{{at}}}, "ok": {json.dumps(point_ok[b])}, '
                  f'"max_abs_error": {json_number(max_abs[b])}, '
                  f'"max_rel_error": {json_number(max_rel[b])}, '
                  f'"worst": {"null" if worst is None else _entry_json(worst)}, '
                  f'"failures": [{failures}]{tail}}}\n')


def _array_layout(result, variables) -> tuple[dict | None, str]:
    """For a check of arrays, the shapes of the variables `at` shows (their components are
    `variables`, in order) and the json's `shapes` key; (None, "") for scalars."""
    shapes = dict(getattr(result, "shapes", {}) or {})
    if not any(shapes.values()):
        return None, ""
    from .components import component_names

    shown, names = {}, list(variables)
    for name, shape in shapes.items():   # the variables first, in the API's order
        parts = component_names(name, tuple(shape))
        if parts and names[:len(parts)] == parts:
            shown[name] = tuple(shape)
            names = names[len(parts):]
    if names:   # not the layout expected: keep the flat components
        return None, ""
    outputs = {name: tuple(shape) for name, shape in shapes.items() if name not in shown
               and any(o == name or o.startswith(name + "[") for o in result.outputs)}
    every = {name: list(shape) for name, shape in {**shown, **outputs}.items()}
    return shown, f', "shapes": {json.dumps(every)}' 


def _write_csv(result, out, variables, at_rows, bad, points, first_row=0,
               header=True) -> None:
    if header:
        out.write(",".join(list(variables) + ["ok", "max_abs_error", "max_rel_error",
                                              "worst_output", "worst_input"]) + "\n")
    max_abs, max_rel = result.max_abs_error.tolist(), result.max_rel_error.tolist()
    point_ok = result.point_ok.tolist()
    worst = result.worst_index().tolist()
    empty = not result.inputs or not result.outputs
    rows = at_rows.tolist()
    for row, b in enumerate(points):
        values = list(map(repr, rows[row]))
        if b is None:
            fields = values + ["false", "nan", "nan", "", ""]
        else:
            i, j = worst[b]
            names = ["", ""] if empty else [result.outputs[i], result.inputs[j]]
            fields = values + ["true" if point_ok[b] else "false",
                               repr(max_abs[b]), repr(max_rel[b])] + names
        out.write(",".join(fields) + "\n")


# --- Rich --------------------------------------------------------------------------------

def _num(x: float, digits: int = 10) -> str:
    return format(x, f".{digits}g")


def verdict(result: CheckResult, bad_rows: Mapping[int, str] | None = None) -> str:
    """One line on the whole check, for people."""
    return verdict_line(result.count, len(result.failing_points()), len(bad_rows or {}),
                        result.rtol, result.atol)


def verdict_line(count: int, failing: int, bad_count: int, rtol: float, atol: float) -> str:
    """The verdict from counts: points checked, points failing, unreadable rows (a
    batch checked chunk by chunk adds them up)."""
    tolerance = f"rtol={rtol:g}, atol={atol:g}"
    bad = ""
    if bad_count:
        bad = f"; {bad_count} unreadable row{'s' if bad_count > 1 else ''}"
    if failing == 0:
        where = "the point" if count == 1 else f"all {count} points"
        return f"AD and finite differences agree at {where} ({tolerance}){bad}"
    where = "the point" if count == 1 else f"{failing} of {count} points"
    return f"AD and finite differences disagree at {where} ({tolerance}){bad}"


def _point_verdict(result: CheckResult, b: int) -> str:
    worst = result.worst(b)
    if worst is None:
        return "nothing to check: the Jacobian is empty"
    entry = f"∂{worst.output}/∂{worst.input}"
    if result.point_ok[b]:
        return f"ok: largest error {_num(worst.abs_error, 3)} (relative " \
               f"{_num(worst.rel_error, 3)}) in {entry}"
    failing = int((~result.ok[b]).sum())
    total = result.ok[b].size
    return f"FAIL: {failing} of {total} entries; worst {entry}"


def check_renderable(result: CheckResult, at_rows=None, variables: Sequence[str] | None = None,
                     bad_rows: Mapping[int, str] | None = None):
    """A Rich renderable: per point a table (entry, AD, FD, abs err, rel err, status) with
    a one-line verdict and the reasons of failures, failing points first; then the verdict
    on the whole check."""
    from rich.console import Group
    from rich.text import Text

    from .render import Column, Fitted

    variables, at_rows, bad, points = _layout(result, variables, at_rows, bad_rows)
    rows = [row for row, b in enumerate(points) if b is not None]
    failing = [row for row in rows if not result.point_ok[points[row]]]
    shown = (failing + [row for row in rows if result.point_ok[points[row]]])[:SHOWN_POINTS]
    shown.sort()
    parts = []
    for row in shown:
        b = points[row]
        if not result.outputs or not result.inputs:
            parts.append(Text(_point_verdict(result, b), style="dim"))
            continue
        at = ", ".join(f"{n}={_num(v)}" for n, v in zip(variables, at_rows[row]))
        title = (f"point {row + 1}: " if len(points) > 1 else "") + (at or "check")
        entries, cells, reasons = [], [[] for _ in range(5)], []
        for i, out in enumerate(result.outputs):
            for j, name in enumerate(result.inputs):
                code = int(result.reason_code[b, i, j])
                if code == OK:
                    status = Text("✓ ok", style="green")
                else:
                    status = Text("✗ " + _SHORT_REASON.get(code, "FAIL"), style="bold red")
                    reason = explain_failure(result, b, i, j)
                    if reason not in reasons:
                        reasons.append(reason)
                entries.append(f"∂{out}/∂{name}")
                for column, cell in zip(cells, (result.ad[b, i, j], result.fd[b, i, j],
                                                result.abs_error[b, i, j],
                                                result.rel_error[b, i, j], status)):
                    column.append(cell if isinstance(cell, Text) else float(cell))
        parts.append(Fitted(title, [Column("entry", entries, justify="left")], [
            Column("AD", cells[0]), Column("finite difference", cells[1]),
            Column("abs err", cells[2], digits=3), Column("rel err", cells[3], digits=3),
            Column("status", cells[4], justify="left")]))
        ok = bool(result.point_ok[b])
        parts.append(Text(_point_verdict(result, b), style="green" if ok else "bold red"))
        parts += [Text("  " + reason, style="red") for reason in reasons]
    for row in sorted(bad):
        parts.append(Text(f"row {row + 1}: {bad[row]}", style="red"))
    hidden = len(rows) - len(shown)
    if hidden > 0:
        parts.append(Text(f"… and {hidden} more points (use --format csv, json or -o for all)",
                          style="dim"))
    parts.append(Text(verdict(result, bad), style="bold green" if result.passed and not bad
                      else "bold red"))
    return Group(*parts)

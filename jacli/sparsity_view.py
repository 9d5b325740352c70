"""Formatting of sparsity patterns (`jacli sparsity`) and of sparse results (`jac
--sparse`, `hess --sparse`). Only formats: the library computes (sparsity.py,
colouring.py, api.Program.sparsity and sparse=True).

Sparse results, per point: the structural nonzeros of the Jacobian (or Hessian) in COO
order (by row, then column), the same pattern at every point:
- json: one object per point, `rows`, `cols` (0-based component indices), `shape` [m, n]
  and `values`, beside `at` and `value` (and `gradient` for hess) as without --sparse;
- csv: the `at` and value columns, then one column per nonzero, named as the dense
  columns are (`df[1]/dx[0]`, `d2f/dx[0]dx[1]`);
- plain: one line per point, the nonzeros' values;
- .npz of one point: the layout scipy.sparse.load_npz reads (`format` coo, `row`, `col`,
  `shape`, `data`); of several points: the shared pattern `row`, `col`, `shape` and
  `values` (B, nnz), with no `format` key (load_npz refuses it rather than misread it).
  Both also hold `value` (B, m), `inputs` and `outputs` (component names) and, for
  hess, `gradient`.
"""

from __future__ import annotations

import json
from math import ceil
from typing import NamedTuple, TextIO

import numpy as np

from .formats import _lines, _nest, _json_value, json_number

#: The grid shows at most this many rows and columns; more are folded into blocks.
GRID_ROWS = 40
GRID_COLUMNS = 24


def counts_lines(structure) -> list[str]:
    """`forward: 1 colour instead of 2000; reverse: 1 instead of 2000` (and a Hessian's)."""
    m, n = structure.pattern.shape
    colours = "colour" if structure.forward == 1 else "colours"
    lines = [f"forward: {structure.forward} {colours} instead of {n}; "
             f"reverse: {structure.reverse} instead of {m}"]
    if structure.hessian is not None:
        lines.append(f"hess: {structure.hessian} sweep{'s' if structure.hessian != 1 else ''}"
                     f" instead of {n}")
    return lines


def nonzeros_line(structure) -> str:
    m, n = structure.pattern.shape
    share = 100 * structure.pattern.nnz / (m * n) if m * n else 0.0
    return f"nonzeros: {structure.pattern.nnz} of {m} x {n} ({share:.3g}%)"


def to_plain(structure) -> str:
    """One line per row: 1 where the entry is a structural nonzero, else 0."""
    mask = structure.pattern.dense()
    return "".join("".join("1" if v else "0" for v in row) + "\n" for row in mask.tolist())


def to_json(structure) -> str:
    pattern = structure.pattern
    colours = {"forward": structure.forward, "reverse": structure.reverse}
    if structure.hessian is not None:
        colours["hess"] = structure.hessian
    return json.dumps({"rows": pattern.rows.tolist(), "cols": pattern.cols.tolist(),
                       "shape": list(pattern.shape), "nnz": pattern.nnz,
                       "colours": colours, "row_names": structure.rows,
                       "col_names": structure.cols}) + "\n"


def to_csv(structure) -> str:
    """The nonzeros, one a line: row, col and their names."""
    lines = ["row,col,row_name,col_name"]
    for i, j in zip(structure.pattern.rows.tolist(), structure.pattern.cols.tolist()):
        lines.append(f"{i},{j},{structure.rows[i]},{structure.cols[j]}")
    return "\n".join(lines) + "\n"


def _blocks(count: int, most: int) -> list[range]:
    size = max(1, ceil(count / max(1, most)))
    return [range(start, min(count, start + size)) for start in range(0, count, size)]


def grid(structure, width: int = 80) -> str:
    """The pattern as a grid of marks under its columns' names, each row after its name,
    then the counts; laid out for `width` columns of text. Rows and columns beyond what
    fits (GRID_ROWS rows) are folded into blocks, each named by its first component."""
    mask = structure.pattern.dense()
    m, n = mask.shape
    label_width = max((len(name) for name in structure.rows), default=0)
    cell = max((len(name) for name in structure.cols), default=1)
    fit = max(1, (width - label_width - 1) // (cell + 1))
    row_blocks, col_blocks = _blocks(m, GRID_ROWS), _blocks(n, min(fit, GRID_COLUMNS))
    folded = len(row_blocks) < m or len(col_blocks) < n
    lines = [" " * label_width + "".join(
        " " + structure.cols[block.start].rjust(cell) for block in col_blocks)]
    for rows in row_blocks:
        marks = []
        for cols in col_blocks:
            part = mask[rows.start:rows.stop, cols.start:cols.stop]
            marks.append("●" if part.all() else "◐" if part.any() else "·")
        lines.append(structure.rows[rows.start].ljust(label_width)
                     + "".join(" " + mark.rjust(cell) for mark in marks))
    if folded:
        lines += [f"each mark: a block of up to {len(row_blocks[0])} rows x "
                  f"{len(col_blocks[0])} columns from the one named",
                  "(● all nonzero, ◐ some, · none)"]
    lines += [nonzeros_line(structure)] + counts_lines(structure)
    return "\n".join(line.rstrip() for line in lines) + "\n"


# --- sparse results (jac --sparse, hess --sparse) ----------------------------------------

class SparseReport(NamedTuple):
    """The sparse results of one chunk of points."""
    command: str                 # jac | hess
    inputs: list[str]            # n input components
    outputs: list[str]           # m output components
    variables: list[str]         # `at`'s columns (components)
    at: np.ndarray               # (B, len(variables))
    value: np.ndarray            # (B, m)
    gradient: np.ndarray | None  # (B, n), hess
    pattern: object              # sparsity.Sparsity of the Jacobian or Hessian
    nonzeros: np.ndarray         # (B, nnz)
    bad_rows: dict[int, str]
    first_row: int
    shapes: object | None = None  # formats.Shapes, for `at` as nested arrays

    @property
    def count(self) -> int:
        return len(self.at)

    def headers(self) -> list[str]:
        rows, cols = self.pattern.rows.tolist(), self.pattern.cols.tolist()
        if self.command == "hess":
            return [f"d2{self.outputs[0]}/d{self.inputs[i]}d{self.inputs[j]}"
                    for i, j in zip(rows, cols)]
        return [f"d{self.outputs[i]}/d{self.inputs[j]}" for i, j in zip(rows, cols)]

    def fields(self) -> list[tuple[str, np.ndarray]]:
        if self.command == "hess":
            return [("value", self.value[:, 0]), ("gradient", self.gradient)]
        return [("value", self.value)]


def write_sparse(report: SparseReport, fmt: str, out: TextIO, header: bool) -> None:
    if fmt == "plain":
        out.write(_lines(report.nonzeros, " "))
    elif fmt == "csv":
        if header:
            value_names = (report.outputs if report.command == "jac" else
                           report.outputs + [f"d{report.outputs[0]}/d{i}" for i in report.inputs])
            out.write(",".join(report.variables + value_names + report.headers()) + "\n")
        parts = [report.at] + [a.reshape(len(a), -1) for _, a in report.fields()]
        table = np.concatenate(parts + [report.nonzeros], axis=1)
        if report.bad_rows:
            table[list(report.bad_rows)] = np.nan
        out.write(_lines(table, ","))
    else:
        _write_sparse_json(report, out)


def _write_sparse_json(report: SparseReport, out: TextIO) -> None:
    pattern = report.pattern
    head = (f'{{"inputs": {json.dumps(report.inputs)}, '
            f'"outputs": {json.dumps(report.outputs)}, ')
    coo = (f'"shape": {json.dumps(list(pattern.shape))}, '
           f'"rows": {json.dumps(pattern.rows.tolist())}, '
           f'"cols": {json.dumps(pattern.cols.tolist())}, ')
    shapes = report.shapes if report.shapes is not None and report.shapes.has_arrays() \
        else None
    names = [json.dumps(name) for name in (shapes.variables if shapes else report.variables)]
    tail = f', "shapes": {json.dumps(shapes.json())}}}' if shapes else "}"
    at_rows, values = report.at.tolist(), report.nonzeros.tolist()
    fields = [(json.dumps(key), array.tolist()) for key, array in report.fields()]
    for row in range(len(report.at)):
        if row in report.bad_rows:
            out.write(json.dumps({"row": report.first_row + row + 1,
                                  "error": report.bad_rows[row]}) + "\n")
            continue
        point = at_rows[row] if shapes is None else _nest(at_rows[row], shapes.variables)
        at = ", ".join(f"{n}: {_json_value(v)}" for n, v in zip(names, point))
        body = ", ".join(f"{key}: {_json_value(rows[row])}" for key, rows in fields)
        numbers = ", ".join(map(json_number, values[row]))
        out.write(f'{head}"at": {{{at}}}, {body}, {coo}"values": [{numbers}]{tail}\n')


def save_sparse_npz(reports: list[SparseReport], path) -> None:
    """One point: scipy.sparse.load_npz's COO layout; several: the pattern and (B, nnz)."""
    first = reports[0]
    nonzeros = np.concatenate([r.nonzeros for r in reports])
    for offset, r in zip(np.cumsum([0] + [len(r.at) for r in reports[:-1]]), reports):
        if r.bad_rows:
            nonzeros[offset + np.array(list(r.bad_rows))] = np.nan
    arrays = {"row": first.pattern.rows, "col": first.pattern.cols,
              "shape": np.array(first.pattern.shape, dtype=np.int64),
              "value": np.concatenate([r.value for r in reports]),
              "inputs": np.array(first.inputs, dtype=str),
              "outputs": np.array(first.outputs, dtype=str)}
    if first.command == "hess":
        arrays["gradient"] = np.concatenate([r.gradient for r in reports])
    if len(nonzeros) == 1:
        arrays.update(format=np.array("coo"), data=nonzeros[0])
    else:
        arrays["values"] = nonzeros
    np.savez(path, **arrays)

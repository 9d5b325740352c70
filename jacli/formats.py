"""Machine-facing output: plain, JSON Lines, CSV, .npy, .npz and Parquet (cli.md).

These never go through Rich. Every number is written as `repr(float)`, the
shortest text that reads back to the same double; in JSON non-finite numbers are
the strings "nan", "inf" and "-inf" so the output stays valid JSON.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import NamedTuple, TextIO

import numpy as np



class Shapes(NamedTuple):
    """The shapes of a report's variables, inputs and outputs (name -> shape, in order),
    for the writers that give arrays their shape back (json `at` and `shapes`, .npz
    blocks). A report without one is all scalars, as in v1."""
    variables: dict[str, tuple[int, ...]]   # the variables of `at`, in its column order
    inputs: dict[str, tuple[int, ...]]      # --wrt order
    outputs: dict[str, tuple[int, ...]]

    @staticmethod
    def of(variables: dict, inputs: list[str], outputs: dict) -> "Shapes":
        """`inputs` are among `variables` (their shapes come from there)."""
        return Shapes(dict(variables), {name: tuple(variables.get(name, ())) for name in inputs},
                      dict(outputs))

    def has_arrays(self) -> bool:
        return any(shape for part in self for shape in part.values())

    def names(self) -> tuple[list[str], list[str], list[str]]:
        """The component names of the variables, inputs and outputs."""
        from .components import component_names

        return tuple([c for name, shape in part.items() for c in component_names(name, shape)]
                     for part in self)

    def json(self) -> dict[str, list[int]]:
        """The `shapes` object of json output: every variable, then every output."""
        return {name: list(shape) for part in (self.variables, self.outputs)
                for name, shape in part.items()}


class Report(NamedTuple):
    """The results of one command over B rows, ready to be written. Every name and
    number is a component's: an array x of shape (3,) gives the columns x[0], x[1], x[2];
    `shapes` says which components make which array (None: all scalars)."""
    command: str                      # eval | grad | jac | hess | jvp | vjp | hvp
    inputs: list[str]                 # n input components
    outputs: list[str]                # m output components
    variables: list[str]              # the names of `at`'s columns (components)
    at: np.ndarray                    # (B, len(variables))
    value: np.ndarray                 # (B, m)
    jacobian: np.ndarray | None       # (B, m, n)
    bad_rows: dict[int, str]          # row (0-based in this report) -> why it is bad
    hessian: np.ndarray | None        # (B, n, n)
    jvp: np.ndarray | None            # (B, m)
    vjp: np.ndarray | None            # (B, n)
    first_row: int                    # rows are numbered from first_row + 1
    shapes: Shapes | None = None
    hvp: np.ndarray | None = None     # (B, n): H.v
    rows: int | None = None           # --reduce: the points summed into this one row
    reduce: str | None = None         # --reduce: sum or mean

    @staticmethod
    def concat(reports: list["Report"]) -> "Report":
        """One report of all rows of consecutive chunks."""
        first = reports[0]
        arrays = {}
        for key in ("at", "value", "jacobian", "hessian", "jvp", "vjp", "hvp"):
            parts = [getattr(r, key) for r in reports]
            arrays[key] = None if parts[0] is None else np.concatenate(parts)
        bad = {r.first_row - first.first_row + row: message
               for r in reports for row, message in r.bad_rows.items()}
        return Report(first.command, first.inputs, first.outputs, first.variables,
                      arrays["at"], arrays["value"], arrays["jacobian"], bad,
                      arrays["hessian"], arrays["jvp"], arrays["vjp"], first.first_row,
                      first.shapes, arrays["hvp"])

    @property
    def count(self) -> int:
        return len(self.value)

    def fields(self) -> list[tuple[str, np.ndarray]]:
        """(JSON key, point-major array) in output order; the last is the command's
        result, the one that plain output and .npy hold."""
        scalar = self.command in ("grad", "hess", "hvp")
        fields = [("value", self.value[:, 0] if scalar else self.value)]
        if scalar:
            fields.append(("gradient", self.jacobian[:, 0, :]))
        if self.command == "jac":
            fields.append(("jacobian", self.jacobian))
        for key in ("hessian", "jvp", "vjp", "hvp"):
            if getattr(self, key) is not None:
                fields.append((key, getattr(self, key)))
        return fields

    def headers(self, key: str, d: str = "d", d2: str = "d2") -> list[str]:
        """Column names of a field: CSV's `df/dx`, or with d="∂", d2="∂²" for people."""
        if key == "value":
            return list(self.outputs)
        from .components import hessian_names, jacobian_names

        if key in ("gradient", "jacobian"):
            return jacobian_names(self.outputs, self.inputs, d)
        if key == "hessian":
            return hessian_names(self.outputs[0], self.inputs, d, d2)
        names = self.outputs if key == "jvp" else self.inputs
        return [f"{key}_{name}" for name in names]


def _flat(array: np.ndarray) -> np.ndarray:
    """(B, ...) -> (B, k)."""
    return array.reshape(len(array), int(np.prod(array.shape[1:])))


def json_number(x: float) -> str:
    if math.isfinite(x):
        return repr(x)
    return '"nan"' if math.isnan(x) else ('"inf"' if x > 0 else '"-inf"')


def _json_value(x) -> str:
    """A number, a list of numbers or a list of lists, as JSON."""
    if not isinstance(x, list):
        return json_number(x)
    if x and isinstance(x[0], list):
        return "[" + ", ".join(map(_json_value, x)) + "]"
    return "[" + ", ".join(map(json_number, x)) + "]"


def _lines(table: np.ndarray, separator: str) -> str:
    """Rows of numbers as text, each number its repr; built by str() of nested lists,
    which formats every float in C, many times faster than a join per row."""
    if table.size == 0:
        return "\n" * len(table)
    text = str(table.tolist())[2:-2]
    return text.replace("], [", "\n").replace(", ", separator) + "\n"


def write_plain(report: Report, out: TextIO, header: bool = True) -> None:
    out.write(_lines(_flat(report.fields()[-1][1]), " "))


def write_json(report: Report, out: TextIO, header: bool = True) -> None:
    import json   # here, not at the top: a one-point run in plain text never needs it

    head = (f'{{"inputs": {json.dumps(report.inputs)}, '
            f'"outputs": {json.dumps(report.outputs)}, ')
    names = [json.dumps(name) for name in report.variables]
    fields = [(json.dumps(key), array.tolist()) for key, array in report.fields()]
    at_rows = report.at.tolist()
    shapes = report.shapes if report.shapes is not None and report.shapes.has_arrays() \
        else None
    tail = "}"
    if shapes is not None:   # `at` gives each variable as a nested list; `shapes` says all
        names = [json.dumps(name) for name in shapes.variables]
        tail = f', "shapes": {json.dumps(shapes.json())}}}'
    for row in range(report.count):
        if row in report.bad_rows:
            out.write(json.dumps({"row": report.first_row + row + 1,
                                  "error": report.bad_rows[row]}) + "\n")
            continue
        values = at_rows[row] if shapes is None else _nest(at_rows[row], shapes.variables)
        at = ", ".join(f"{n}: {_json_value(v)}" for n, v in zip(names, values))
        body = ", ".join(f"{key}: {_json_value(rows[row])}" for key, rows in fields)
        reduced = "" if report.rows is None else \
            f'"reduce": "{report.reduce}", "rows": {report.rows}, '
        out.write(f'{head}"at": {{{at}}}, {reduced}{body}{tail}\n')


def _nest(flat: list[float], shapes: dict[str, tuple[int, ...]]) -> list:
    """One row's components as each variable's value: a number or nested lists."""
    from .components import size

    values, start = [], 0
    for shape in shapes.values():
        k = size(shape)
        values.append(flat[start] if not shape else
                      np.reshape(flat[start:start + k], shape).tolist())
        start += k
    return values


def csv_header(report: Report) -> list[str]:
    return list(report.variables) + [h for key, _ in report.fields() for h in report.headers(key)]


def write_csv(report: Report, out: TextIO, header: bool = True) -> None:
    if header:
        out.write(",".join(csv_header(report)) + "\n")
    table = np.concatenate([report.at] + [_flat(a) for _, a in report.fields()], axis=1)
    if report.bad_rows:
        table[list(report.bad_rows)] = np.nan
    out.write(_lines(table, ","))


def save_npy(report: Report, path) -> None:
    np.save(path, report.fields()[-1][1])


def save_npz(report: Report, path) -> None:
    arrays = dict(report.fields())
    arrays["inputs"] = np.array(report.inputs, dtype=str)
    arrays["outputs"] = np.array(report.outputs, dtype=str)
    if report.shapes is not None and report.shapes.has_arrays():
        arrays.update(blocks(report))
    np.savez(path, **arrays)


def blocks(report: Report) -> dict[str, np.ndarray]:
    """The results as arrays in the shapes JAX gives (points first): `value/y`
    (B, *y), `jacobian/y/x` (B, *y, *x), `gradient/x` (B, *x), `hessian/x/w`
    (B, *x, *w), `jvp/y` (B, *y), `vjp/x` (B, *x), `hvp/x` (B, *x)."""
    from .components import size

    B, shapes = report.count, report.shapes
    outputs, inputs = list(shapes.outputs.items()), list(shapes.inputs.items())

    def split(array: np.ndarray, parts) -> list[tuple[str, tuple, np.ndarray]]:
        """`array` (B, k, ...) cut along axis 1 into the parts' components."""
        pieces, start = [], 0
        for name, shape in parts:
            k = size(shape)
            pieces.append((name, shape, array[:, start:start + k]))
            start += k
        return pieces

    result = {}
    for name, shape, block in split(report.value, outputs):
        result[f"value/{name}"] = block.reshape((B,) + shape)
    if report.jacobian is not None:
        key = "gradient" if report.command in ("grad", "hess", "hvp") else "jacobian"
        for out, out_shape, rows in split(report.jacobian, outputs):
            for name, shape, block in split(rows.transpose(0, 2, 1), inputs):
                block = block.transpose(0, 2, 1).reshape((B,) + out_shape + shape)
                result[f"gradient/{name}" if key == "gradient"
                       else f"jacobian/{out}/{name}"] = block
    if report.hessian is not None:
        for first, first_shape, rows in split(report.hessian, inputs):
            for name, shape, block in split(rows.transpose(0, 2, 1), inputs):
                result[f"hessian/{first}/{name}"] = block.transpose(0, 2, 1).reshape(
                    (B,) + first_shape + shape)
    if report.jvp is not None:
        for name, shape, block in split(report.jvp, outputs):
            result[f"jvp/{name}"] = block.reshape((B,) + shape)
    for key in ("vjp", "hvp"):
        if getattr(report, key) is not None:
            for name, shape, block in split(getattr(report, key), inputs):
                result[f"{key}/{name}"] = block.reshape((B,) + shape)
    return result


class ParquetWriter:
    """Reports written as one Parquet file: the columns of CSV output, in its order, all
    float64; a bad row is null in every column (CSV's nan), so that the file read back
    as points finds it bad again. Rows are gathered into row groups of about
    ROW_GROUP_FLOATS numbers, whatever the chunks (a pipe's are small).

    Made before the output is opened, so that a missing pyarrow is said before any file
    is made; `into(stream)` is the block that writes to it: left by an exception, the
    file is left without its footer (and `target` removes it)."""

    ROW_GROUP_FLOATS = 1 << 22

    def __init__(self, output: str):
        from .parquet_io import pyarrow

        self.pa = pyarrow(f"writing {output}", "-o")
        self.writer, self.pending, self.floats = None, [], 0

    def write(self, report: Report) -> None:
        pa = self.pa
        blocks = [report.at] + [_flat(a) for _, a in report.fields()]
        # One contiguous copy per column (pyarrow then takes it as it is).
        columns = [np.ascontiguousarray(block[:, j]) for block in blocks
                   for j in range(block.shape[1])]
        mask = None
        if report.bad_rows:
            mask = np.zeros(report.count, dtype=bool)
            mask[list(report.bad_rows)] = True
        names = csv_header(report)
        chunk = pa.Table.from_arrays([pa.array(column, mask=mask) for column in columns],
                                     schema=pa.schema([(n, pa.float64()) for n in names]))
        if self.writer is None:
            # Results are continuous floats: a dictionary would be tried, then given up.
            self.writer = pa.parquet.ParquetWriter(pa.PythonFile(_Sink(self.stream), mode="w"),
                                                   chunk.schema, use_dictionary=False)
        self.pending.append(chunk)
        self.floats += report.count * len(columns)
        if self.floats >= self.ROW_GROUP_FLOATS:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            rows = sum(len(chunk) for chunk in self.pending)
            self.writer.write_table(self.pa.concat_tables(self.pending),
                                    row_group_size=max(1, rows))
        self.pending, self.floats = [], 0

    @contextmanager
    def into(self, stream):
        self.stream = stream
        try:
            yield self
        except BaseException:
            if self.writer is not None:
                self.writer.is_open = False   # no footer on a half file (nor at exit)
            raise
        if self.writer is not None:
            self._flush()
            self.writer.close()


class _Sink:
    """The binary stream of `output.target`, as pyarrow's PythonFile wants a file."""
    closed = False

    def __init__(self, stream):
        self.write, self.flush = stream.write, stream.flush

    def close(self) -> None:   # (target closes the stream)
        pass


TEXT_WRITERS = {"plain": write_plain, "json": write_json, "csv": write_csv}

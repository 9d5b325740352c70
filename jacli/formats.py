"""Machine-facing output: plain, JSON Lines, CSV, .npy and .npz (cli.md).

These never go through Rich. Every number is written as `repr(float)`, the
shortest text that reads back to the same double; in JSON non-finite numbers are
the strings "nan", "inf" and "-inf" so the output stays valid JSON.
"""

from __future__ import annotations

import math
from typing import NamedTuple, TextIO

import numpy as np

class Report(NamedTuple):
    """The results of one command over B rows, ready to be written."""
    command: str                      # eval | grad | jac | hess | jvp | vjp
    inputs: list[str]                 # n
    outputs: list[str]                # m
    variables: list[str]              # the names of `at`'s columns
    at: np.ndarray                    # (B, len(variables))
    value: np.ndarray                 # (B, m)
    jacobian: np.ndarray | None       # (B, m, n)
    bad_rows: dict[int, str]          # row (0-based in this report) -> why it is bad
    hessian: np.ndarray | None        # (B, n, n)
    jvp: np.ndarray | None            # (B, m)
    vjp: np.ndarray | None            # (B, n)
    first_row: int                    # rows are numbered from first_row + 1

    @staticmethod
    def concat(reports: list["Report"]) -> "Report":
        """One report of all rows of consecutive chunks."""
        first = reports[0]
        arrays = {}
        for key in ("at", "value", "jacobian", "hessian", "jvp", "vjp"):
            parts = [getattr(r, key) for r in reports]
            arrays[key] = None if parts[0] is None else np.concatenate(parts)
        bad = {r.first_row - first.first_row + row: message
               for r in reports for row, message in r.bad_rows.items()}
        return Report(first.command, first.inputs, first.outputs, first.variables,
                      arrays["at"], arrays["value"], arrays["jacobian"], bad,
                      arrays["hessian"], arrays["jvp"], arrays["vjp"], first.first_row)

    @property
    def count(self) -> int:
        return len(self.value)

    def fields(self) -> list[tuple[str, np.ndarray]]:
        """(JSON key, point-major array) in output order; the last is the command's
        result, the one that plain output and .npy hold."""
        scalar = self.command in ("grad", "hess")
        fields = [("value", self.value[:, 0] if scalar else self.value)]
        if scalar:
            fields.append(("gradient", self.jacobian[:, 0, :]))
        if self.command == "jac":
            fields.append(("jacobian", self.jacobian))
        for key in ("hessian", "jvp", "vjp"):
            if getattr(self, key) is not None:
                fields.append((key, getattr(self, key)))
        return fields

    def headers(self, key: str, d: str = "d", d2: str = "d2") -> list[str]:
        """Column names of a field: CSV's `df/dx`, or with d="∂", d2="∂²" for people."""
        if key == "value":
            return list(self.outputs)
        if key in ("gradient", "jacobian"):
            return [f"{d}{o}/{d}{i}" for o in self.outputs for i in self.inputs]
        if key == "hessian":
            return [f"{d2}{self.outputs[0]}/{d}{a}{d}{b}" for a in self.inputs
                    for b in self.inputs]
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
    for row in range(report.count):
        if row in report.bad_rows:
            out.write(json.dumps({"row": report.first_row + row + 1,
                                  "error": report.bad_rows[row]}) + "\n")
            continue
        at = ", ".join(f"{n}: {json_number(v)}" for n, v in zip(names, at_rows[row]))
        body = ", ".join(f"{key}: {_json_value(rows[row])}" for key, rows in fields)
        out.write(f'{head}"at": {{{at}}}, {body}}}\n')


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
    np.savez(path, **arrays)


TEXT_WRITERS = {"plain": write_plain, "json": write_json, "csv": write_csv}

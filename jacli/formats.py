"""Machine-facing output: plain, JSON Lines, CSV, .npy and .npz (cli.md).

These never go through Rich. Every number is written as `repr(float)`, the
shortest text that reads back to the same double; in JSON non-finite numbers are
the strings "nan", "inf" and "-inf" so the output stays valid JSON.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np

# What each command's result is called in JSON and .npz, and its plain/.npy layout.
DERIVATIVE_KEY = {"eval": None, "grad": "gradient", "jac": "jacobian"}


@dataclass
class Report:
    """The results of one command over B rows, ready to be written."""
    command: str                      # eval | grad | jac
    inputs: list[str]                 # n
    outputs: list[str]                # m
    variables: list[str]              # the names of `at`'s columns
    at: np.ndarray                    # (B, len(variables))
    value: np.ndarray                 # (B, m)
    jacobian: np.ndarray | None       # (B, m, n)
    bad_rows: dict[int, str] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.value)

    def derivative(self) -> np.ndarray | None:
        """The command's derivative array, point-major, as .npy stores it."""
        if self.command == "grad":
            return self.jacobian[:, 0, :]
        if self.command == "jac":
            return self.jacobian
        return None

    def plain_numbers(self) -> np.ndarray:
        """(B, k): the numbers of each plain line."""
        derivative = self.derivative()
        if derivative is None:
            return self.value
        return derivative.reshape(self.count, int(np.prod(derivative.shape[1:])))


def json_number(x: float) -> str:
    if math.isfinite(x):
        return repr(x)
    return '"nan"' if math.isnan(x) else ('"inf"' if x > 0 else '"-inf"')


def write_plain(report: Report, out: TextIO) -> None:
    for row in report.plain_numbers().tolist():
        out.write(" ".join(map(repr, row)) + "\n")


def _json_list(values) -> str:
    return "[" + ", ".join(map(json_number, values)) + "]"


def write_json(report: Report, out: TextIO) -> None:
    head = (f'{{"inputs": {json.dumps(report.inputs)}, '
            f'"outputs": {json.dumps(report.outputs)}, ')
    names = [json.dumps(name) for name in report.variables]
    key = DERIVATIVE_KEY[report.command]
    derivative = report.derivative()
    derivative_rows = derivative.tolist() if derivative is not None else None
    values = report.value.tolist()
    at_rows = report.at.tolist()
    for row in range(report.count):
        if row in report.bad_rows:
            out.write(json.dumps({"row": row + 1, "error": report.bad_rows[row]}) + "\n")
            continue
        at = ", ".join(f"{n}: {json_number(v)}" for n, v in zip(names, at_rows[row]))
        if report.command == "eval":
            line = f'{head}"at": {{{at}}}, "value": {_json_list(values[row])}}}'
        elif report.command == "grad":
            line = (f'{head}"at": {{{at}}}, "value": {json_number(values[row][0])}, '
                    f'"{key}": {_json_list(derivative_rows[row])}}}')
        else:
            matrix = "[" + ", ".join(_json_list(r) for r in derivative_rows[row]) + "]"
            line = f'{head}"at": {{{at}}}, "value": {_json_list(values[row])}, "{key}": {matrix}}}'
        out.write(line + "\n")


def csv_header(report: Report) -> list[str]:
    header = list(report.variables) + list(report.outputs)
    if report.command != "eval":
        header += [f"d{o}/d{i}" for o in report.outputs for i in report.inputs]
    return header


def write_csv(report: Report, out: TextIO) -> None:
    out.write(",".join(csv_header(report)) + "\n")
    parts = [report.at, report.value]
    if report.command != "eval":
        parts.append(report.jacobian.reshape(report.count, len(report.outputs) * len(report.inputs)))
    table = np.concatenate(parts, axis=1)
    if report.bad_rows:
        table[list(report.bad_rows)] = np.nan
    for row in table.tolist():
        out.write(",".join(map(repr, row)) + "\n")


def save_npy(report: Report, path) -> None:
    derivative = report.derivative()
    np.save(path, report.value if derivative is None else derivative)


def save_npz(report: Report, path) -> None:
    arrays = {"value": report.value[:, 0] if report.command == "grad" else report.value,
              "inputs": np.array(report.inputs, dtype=str),
              "outputs": np.array(report.outputs, dtype=str)}
    key = DERIVATIVE_KEY[report.command]
    if key:
        arrays[key] = report.derivative()
    np.savez(path, **arrays)


TEXT_WRITERS = {"plain": write_plain, "json": write_json, "csv": write_csv}

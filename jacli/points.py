"""Where the points come from: `--at` text and `--points` files (CSV, JSON Lines, .npy).

A points file becomes columns of equal length B plus a record of its bad rows:
a bad row keeps its place (its values are nan) so every good row still gets its
result, in order, and the output can say which row failed.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import JacliError

FORMATS = ("csv", "jsonl", "npy")


@dataclass
class Points:
    """B points: one float array per column, and the rows that could not be read."""
    columns: dict[str, np.ndarray]
    count: int
    bad_rows: dict[int, str] = field(default_factory=dict)   # 0-based row -> message

    def good_mask(self) -> np.ndarray:
        mask = np.ones(self.count, dtype=bool)
        if self.bad_rows:
            mask[list(self.bad_rows)] = False
        return mask


def parse_float(text: str) -> float:
    """A float as --at and points files write it: `1e-3`, `-2`, `inf`, `nan`."""
    if "_" in text or not text.isascii():  # float() accepts 1_000 and non-ASCII digits
        raise ValueError(text)
    return float(text)


def parse_at(items: list[str], origin: str = "--at") -> dict[str, float]:
    """`["x=1,y=2", "z=3"]` -> {"x": 1.0, "y": 2.0, "z": 3.0}."""
    values: dict[str, float] = {}
    for item in items:
        offset = 0
        for part in item.split(","):
            span = (offset, offset + len(part))
            offset += len(part) + 1
            name, eq, number = part.partition("=")
            name = name.strip()
            if not eq or not name:
                raise JacliError(f"expected name=value, got {part.strip()!r}", span, item, origin)
            if not (name.isidentifier() and name.isascii()):
                raise JacliError(f"{name!r} is not a variable name", span, item, origin)
            try:
                value = parse_float(number)
            except ValueError:
                raise JacliError(f"the value of '{name}' is not a number: {number.strip()!r}",
                                 span, item, origin) from None
            if name in values:
                raise JacliError(f"'{name}' is given twice", span, item, origin)
            values[name] = value
    return values


def guess_format(path: str, explicit: str | None) -> str:
    if explicit:
        return explicit
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix == ".npy":
        return "npy"
    return "csv"


def read_points(path: str, fmt: str | None, wanted: list[str], required: list[str],
                npy_columns: list[str]) -> Points:
    """Read a points file (`-` is standard input) that must give every `required`
    variable. Only the `wanted` columns are read; others (an id column, say) are
    ignored. `npy_columns` names the columns of an .npy file."""
    fmt = guess_format(path, fmt)
    origin = "standard input" if path == "-" else path
    try:
        if fmt == "npy":
            source = io.BytesIO(sys.stdin.buffer.read()) if path == "-" else path
            return _read_npy(source, npy_columns, origin)
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as error:
        raise JacliError(f"cannot read points file {origin}: {error.strerror}",
                         origin="--points") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise JacliError(f"{origin} is not UTF-8 text (byte {error.start})",
                         origin="--points") from None
    if fmt == "jsonl":
        return _read_jsonl(text, wanted, required)
    return _read_csv(text, origin, wanted, required)


def _read_npy(source, columns: list[str], origin: str) -> Points:
    try:
        array = np.load(source, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise JacliError(f"{origin} is not a NumPy .npy file of numbers", origin="--points") \
            from None
    if array.dtype.kind not in "fiub":
        raise JacliError(f"{origin} holds {array.dtype}, not numbers", origin="--points")
    if array.ndim == 1 and len(columns) == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[1] != len(columns):
        raise JacliError(f"{origin} has shape {array.shape}; expected (B, {len(columns)}) "
                         f"with columns {', '.join(columns)} (the --wrt order)",
                         origin="--points")
    array = array.astype(float, copy=False)
    return Points({name: array[:, j] for j, name in enumerate(columns)}, len(array))


def _read_csv(text: str, origin: str, wanted: list[str], required: list[str]) -> Points:
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise JacliError(f"{origin} is empty: expected a header row naming the variables",
                         origin="--points")
    header = [name.strip() for name in next(csv.reader([lines[0]]))]
    missing = [name for name in required if name not in header]
    if missing:
        raise JacliError(f"no value for {', '.join(repr(m) for m in missing)}: {origin} has "
                         f"the columns {', '.join(header)}", origin="--points")
    used = [j for j, name in enumerate(header) if name in wanted]
    twice = {header[j] for j in used if header.count(header[j]) > 1}
    if twice:
        raise JacliError(f"{origin} has the column '{twice.pop()}' twice", origin="--points")
    body = lines[1:]
    while body and not body[-1].strip():
        body.pop()
    data = _read_csv_fast(body, len(header), used)
    bad: dict[int, str] = {}
    if data is None:
        data, bad = _read_csv_rows(body, header, used)
    return Points({header[j]: data[:, k] for k, j in enumerate(used)}, len(body), bad)


def _read_csv_fast(body: list[str], width: int, used: list[int]) -> np.ndarray | None:
    """All rows at once with NumPy, or None if any row needs a closer look."""
    if not body or not used:
        return np.empty((len(body), len(used)))
    if "\n".join(body).count(",") != (width - 1) * len(body):
        return None  # a ragged row, or quoted commas
    try:
        data = np.loadtxt(body, delimiter=",", ndmin=2, dtype=float, quotechar='"',
                          usecols=used, comments=None)
    except ValueError:
        return None
    return data if data.shape == (len(body), len(used)) else None


def _read_csv_rows(body: list[str], header: list[str], used: list[int]):
    """Row by row, recording each bad row's problem instead of stopping."""
    data = np.full((len(body), len(used)), np.nan)
    bad: dict[int, str] = {}
    for row, line in enumerate(body):
        # One physical line is one row, so an unbalanced quote cannot shift later rows.
        fields = next(csv.reader([line]), [])
        if len(fields) != len(header):
            bad[row] = f"has {len(fields)} fields, the header has {len(header)}"
            continue
        for k, j in enumerate(used):
            try:
                data[row, k] = parse_float(fields[j])
            except ValueError:
                bad[row] = f"the value of '{header[j]}' is not a number: {fields[j].strip()!r}"
                break
    return data, bad


def _read_jsonl(text: str, wanted: list[str], required: list[str]) -> Points:
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    columns: dict[str, np.ndarray] = {}
    bad: dict[int, str] = {}
    for row, line in enumerate(lines):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            bad[row] = "is not a JSON object"
            continue
        missing = [name for name in required if name not in record]
        if missing:
            bad[row] = f"has no value for '{missing[0]}'"
            continue
        for name, value in record.items():
            if name not in wanted:
                continue
            if isinstance(value, str):
                try:
                    value = parse_float(value)
                except ValueError:
                    pass
            if isinstance(value, int) and not isinstance(value, bool):
                value = float(value) if abs(value) < 2 ** 1024 else math.copysign(math.inf, value)
            if not isinstance(value, float):
                bad[row] = f"the value of '{name}' is not a number: {json.dumps(value)[:40]}"
                break
            if name not in columns:
                columns[name] = np.full(len(lines), np.nan)
            columns[name][row] = value
    return Points(columns, len(lines), bad)

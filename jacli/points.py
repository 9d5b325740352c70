"""Where the points come from: `--at` text and `--points` files (CSV, JSON Lines, .npy).

A points file is read in chunks of rows (`PointsReader.chunks`), so memory stays
bounded however long it is. Each chunk becomes columns of equal length plus a
record of its bad rows: a bad row keeps its place (its values are nan) so every
good row still gets its result, in order, and the output can say which row failed.
"""

from __future__ import annotations

import io
import math
import re
import sys
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from .errors import JacliError

#: Rows per chunk of a points file.
CHUNK_ROWS = 1 << 16


class Points(NamedTuple):
    """Rows `first_row ...` of a points file: one float array per column, and the
    rows (0-based within the chunk) that could not be read."""
    columns: dict[str, np.ndarray]
    count: int
    bad_rows: dict[int, str]   # each chunk has its own dict
    first_row: int = 0

    def good_mask(self) -> np.ndarray:
        mask = np.ones(self.count, dtype=bool)
        if self.bad_rows:
            mask[list(self.bad_rows)] = False
        return mask

    @staticmethod
    def concat(chunks: list["Points"]) -> "Points":
        names = {name for chunk in chunks for name in chunk.columns}
        columns = {name: np.concatenate([c.columns.get(name, np.full(c.count, np.nan))
                                         for c in chunks]) for name in names}
        bad, offset = {}, 0
        for chunk in chunks:
            bad.update({offset + row: message for row, message in chunk.bad_rows.items()})
            offset += chunk.count
        return Points(columns, offset, bad, chunks[0].first_row if chunks else 0)


def parse_float(text: str) -> float:
    """A float as --at and points files write it: `1e-3`, `-2`, `inf`, `nan`."""
    if "_" in text or not text.isascii():  # float() accepts 1_000 and non-ASCII digits
        raise ValueError(text)
    return float(text)


def parse_at(items: list[str], origin: str = "--at") -> dict[str, float]:
    """`["x=1,y=2", "z=pi/4"]` -> {"x": 1.0, "y": 2.0, "z": 0.785...}.

    A value is a number or a constant expression of the language (`pi/4`, `1/3`,
    `sqrt(2)`), parsed and evaluated by jacli itself, never by Python."""
    values: dict[str, float] = {}
    for item in items:
        previous = None   # the last name=value of this item, for the decimal-comma hint
        for part, offset in _top_level_parts(item):
            span = (offset, offset + len(part))
            name, eq, text = part.partition("=")
            name = name.strip()
            if not eq or not name:
                hint = None
                if previous and re.fullmatch(r"\s*[0-9]+\s*", part) \
                        and re.fullmatch(r"\s*[0-9]+\s*", previous[1]):
                    hint = (f"a decimal point is a dot: {previous[0]}={previous[1].strip()}."
                            f"{part.strip()}")
                raise JacliError(f"expected name=value, got {part.strip()!r}", span, item,
                                 origin, hint=hint)
            if not (name.isidentifier() and name.isascii()):
                raise JacliError(f"{name!r} is not a variable name", span, item, origin)
            if name in values:
                raise JacliError(f"'{name}' is given twice", span, item, origin)
            values[name] = _at_value(name, text, item, offset + len(part) - len(text), span,
                                     origin)
            previous = (name, text)
    return values


def _top_level_parts(item: str) -> Iterator[tuple[str, int]]:
    """The comma-separated parts of `item` and their offsets; commas inside parentheses
    (`x=atan2(1, 2)`) do not separate."""
    depth, start = 0, 0
    for i, char in enumerate(item):
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            yield item[start:i], start
            start = i + 1
    yield item[start:], start


def _at_value(name: str, text: str, item: str, start: int, span: tuple[int, int],
              origin: str) -> float:
    """A number, or a constant expression evaluated as a program of the language."""
    try:
        return parse_float(text)
    except ValueError:
        pass
    not_a_number = f"the value of '{name}' is not a number: {text.strip()!r}"
    later = re.search(r"\s+([A-Za-z_][A-Za-z0-9_]*\s*=)", text)
    if later:   # x=1 y=2
        fixed = re.sub(r"\s+(?=[A-Za-z_][A-Za-z0-9_]*\s*=)", ",", item.strip())
        raise JacliError(not_a_number, span, item, origin,
                         hint=f"separate the values with commas: {fixed}")
    if not text.strip() or any(c in text for c in "=;\n#"):
        raise JacliError(not_a_number, span, item, origin)
    from .api import Program   # the language's own parser and arithmetic

    try:
        program = Program(text)
    except JacliError as error:   # the caret under a bad character, else the whole item
        where = span
        if error.span is not None and error.message.startswith("unexpected character"):
            where = (start + error.span[0], start + error.span[1])
        hint = error.hint or (error.message.replace("program", "value")
                              if error.span is not None else None)
        raise JacliError(not_a_number, where, item, origin, hint=hint) from None
    if program.variables:
        raise JacliError(f"the value of '{name}' must be a constant: "
                         f"'{program.variables[0]}' is a variable", span, item, origin,
                         hint="--at values are numbers or constant expressions, e.g. pi/4")
    if len(program.outputs) != 1:
        raise JacliError(not_a_number, span, item, origin)
    return float(program.eval({}).value[0])


def guess_format(path: str, explicit: str | None) -> str:
    if explicit:
        return explicit
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix == ".npy":
        return "npy"
    return "csv"


class PointsReader:
    """A points file (`-` is standard input), opened and checked: the header must give
    every `required` variable. Only the `wanted` columns are read; others (an id column,
    say) are ignored. `npy_columns` names the columns of an .npy file."""

    def __init__(self, path: str, fmt: str | None, wanted: list[str], required: list[str],
                 npy_columns: list[str]):
        self.format = guess_format(path, fmt)
        self.origin = "standard input" if path == "-" else path
        self.wanted, self.required = wanted, required
        try:
            if self.format == "npy":
                source = io.BytesIO(sys.stdin.buffer.read()) if path == "-" else path
                self.array = _load_npy(source, npy_columns, self.origin)
                self.columns = npy_columns
                return
            binary = sys.stdin.buffer if path == "-" else open(path, "rb")
        except OSError as error:
            raise JacliError(f"cannot read points file {self.origin}: {error.strerror}",
                             origin="--points") from None
        self.binary, self.at_start = binary, True
        if self.format == "csv":
            try:
                self._read_header()
            except JacliError:
                self.close()
                raise

    def close(self) -> None:
        binary = getattr(self, "binary", None)
        if binary is not None and binary is not sys.stdin.buffer:
            binary.close()

    def _next_line(self) -> str | None:
        """The next line, decoded; a line that is not UTF-8 becomes an `_Undecodable`
        (its row is bad, the others go on). None at the end."""
        raw = self.binary.readline()
        if not raw:
            return None
        if self.at_start:
            raw, self.at_start = raw.removeprefix(b"\xef\xbb\xbf"), False
        raw = raw.rstrip(b"\n").rstrip(b"\r")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            return _Undecodable(f"is not UTF-8 text (byte {error.start + 1} of the row is "
                                f"{raw[error.start]:#04x})")

    def _read_header(self) -> None:
        line = self._next_line()
        if isinstance(line, _Undecodable):
            raise JacliError(f"the header of {self.origin} {line}", origin="--points")
        if line is None or not line.strip():
            raise JacliError(f"{self.origin} is empty: expected a header row naming the "
                             "variables", origin="--points")
        import csv   # csv and json are imported where used: --at alone never needs them

        self.header = [name.strip() for name in next(csv.reader([line]))]
        missing = [name for name in self.required if name not in self.header]
        if missing:
            raise JacliError(f"no value for {', '.join(repr(m) for m in missing)}: "
                             f"{self.origin} has the columns {', '.join(self.header)}",
                             origin="--points")
        self.used = [j for j, name in enumerate(self.header) if name in self.wanted]
        twice = {self.header[j] for j in self.used if self.header.count(self.header[j]) > 1}
        if twice:
            raise JacliError(f"{self.origin} has the column '{twice.pop()}' twice",
                             origin="--points")

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[Points]:
        """The points, `rows` at a time, in order; at least one (maybe empty) chunk."""
        if self.format == "npy":
            for start in range(0, max(len(self.array), 1), rows):
                block = np.asarray(self.array[start:start + rows], dtype=float)
                yield Points({name: block[:, j] for j, name in enumerate(self.columns)},
                             len(block), {}, start)
            return
        try:
            yield from self._text_chunks(rows)
        finally:
            self.close()

    def _text_chunks(self, rows: int) -> Iterator[Points]:
        first, pending_blank = 0, []
        while True:
            block = []
            for line in iter(self._next_line, None):
                if not line.strip():       # blank lines count as rows only if more follow
                    pending_blank.append(line)
                    continue
                block += pending_blank
                pending_blank = []
                block.append(line)
                if len(block) >= rows:
                    break
            if not block and first:
                return
            yield self._parse(block, first)
            first += len(block)
            if not block:
                return

    def _parse(self, lines: list[str], first_row: int) -> Points:
        if self.format == "jsonl":
            points = _parse_jsonl(lines, self.wanted, self.required)
        else:
            data = _read_csv_fast(lines, len(self.header), self.used)
            bad: dict[int, str] = {}
            if data is None:
                data, bad = _read_csv_rows(lines, self.header, self.used)
            points = Points({self.header[j]: data[:, k] for k, j in enumerate(self.used)},
                            len(lines), bad)
        for row, line in enumerate(lines):
            if isinstance(line, _Undecodable):
                points.bad_rows[row] = str(line)
        return points._replace(first_row=first_row)


class _Undecodable(str):
    """A points-file line that is not UTF-8; its text is what to say about it."""


def _load_npy(source, columns: list[str], origin: str) -> np.ndarray:
    """The (B, n) array of an .npy file, memory-mapped when it is a file."""
    try:
        array = np.load(source, allow_pickle=False,
                        mmap_mode="r" if isinstance(source, str) else None)
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
    return array


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
    import csv

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


def _parse_jsonl(lines: list[str], wanted: list[str], required: list[str]) -> Points:
    import json

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

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


#: Points formats by file ending; standard input and other endings are told by their
#: first bytes (`sniff_format`), else CSV.
FORMATS_BY_SUFFIX = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl",
                     ".ndjson": "jsonl", ".npy": "npy", ".npz": "npz"}


def guess_format(path: str, explicit: str | None) -> str | None:
    """The format `--points-format` or the ending of `path` tells; None if neither does."""
    if explicit:
        return explicit.lower()
    return FORMATS_BY_SUFFIX.get(Path(path).suffix.lower()) if path != "-" else None


def sniff_format(start: bytes) -> str:
    """The format told by a points file's first bytes: `{` JSON Lines, NumPy's magic .npy,
    a zip .npz; anything else CSV."""
    start = start.removeprefix(b"\xef\xbb\xbf").lstrip()
    if start.startswith(b"{"):
        return "jsonl"
    if start.startswith(b"\x93NUMPY"):
        return "npy"
    if start.startswith(b"PK\x03\x04"):
        return "npz"
    return "csv"


def _peek(binary, size: int = 64) -> bytes:
    """The first bytes of a stream, left to be read again."""
    if hasattr(binary, "peek"):
        return binary.peek(size)[:size]
    position = binary.tell()
    data = binary.read(size)
    binary.seek(position)
    return data


class PointsReader:
    """A points file (`-` is standard input), opened and checked: the header must give
    every `required` variable. Only the `wanted` columns are read; others (an id column,
    say) are ignored. `npy_columns` names the columns of an .npy file; `columns`
    (--columns), when given, names the columns of an .npy or of a text file without a
    header row."""

    def __init__(self, path: str, fmt: str | None, wanted: list[str], required: list[str],
                 npy_columns: list[str], columns: list[str] | None = None):
        self.format = guess_format(path, fmt)
        self.origin = "standard input" if path == "-" else path
        self.wanted, self.required, self.given_columns = wanted, required, columns
        if columns is not None:
            _check_columns(columns)
        try:
            binary = sys.stdin.buffer if path == "-" else open(path, "rb")
            if self.format is None:
                self.format = sniff_format(_peek(binary))
            if columns is not None and self.format in ("jsonl", "npz"):
                kind = "JSON Lines" if self.format == "jsonl" else ".npz"
                raise JacliError(f"{kind} points name their own columns (--columns is for "
                                 "CSV, TSV, space-separated and .npy points)",
                                 origin="--columns")
            if self.format in ("npy", "npz"):
                if path == "-":
                    source = io.BytesIO(binary.read())
                else:
                    binary.close()
                    source = path
                if self.format == "npz":
                    self.array, self.columns = _load_npz(source, wanted, required,
                                                         self.origin)
                    return
                self.columns = columns if columns is not None else npy_columns
                missing = [name for name in required if name not in self.columns]
                if columns is not None and missing:
                    raise JacliError(f"no value for {', '.join(repr(m) for m in missing)}: "
                                     f"--columns names {', '.join(columns)}",
                                     origin="--columns")
                self.array = _load_npy(source, self.columns, self.origin)
                return
        except OSError as error:
            raise JacliError(f"cannot read points file {self.origin}: {error.strerror}",
                             origin="--points") from None
        self.binary, self.at_start = binary, True
        self.npy_columns = npy_columns
        if self.format in ("csv", "tsv", "ssv"):
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

    def _fields(self, line: str) -> list[str]:
        if self.format == "tsv":
            return line.split("\t")
        if self.format == "ssv":
            return line.split()
        import csv   # csv and json are imported where used: --at alone never needs them

        return next(csv.reader([line]), [])

    def _read_header(self) -> None:
        if self.given_columns is not None:   # --columns: the file has no header row
            self._use_header(self.given_columns)
            return
        line = self._next_line()
        if isinstance(line, _Undecodable):
            raise JacliError(f"the header of {self.origin} {line}", origin="--points")
        if line is None or not line.strip():
            raise JacliError(f"{self.origin} is empty: expected a header row naming the "
                             "variables", origin="--points")
        header = [name.strip() for name in self._fields(line)]
        if all(_is_number(name) for name in header):
            self._no_header(header)
        self._use_header(header)

    def _no_header(self, row: list[str]) -> None:
        """The first row holds numbers: say which header (or --columns) would work."""
        names = self.npy_columns if len(self.npy_columns) == len(row) else \
            self.required if len(self.required) == len(row) else None
        shown = ", ".join(row[:4]) + (", ..." if len(row) > 4 else "")
        if names:
            separator = {"tsv": "\t", "ssv": " "}.get(self.format, ",")
            hint = (f"start it with the header row {separator.join(names)!r}, or pass "
                    f"--columns {','.join(names)}")
        else:
            hint = (f"start it with a header row naming its {len(row)} columns (the "
                    f"variables: {', '.join(self.required) or 'none'}), or pass --columns")
        raise JacliError(f"the first row of {self.origin} must name the variables; it holds "
                         f"numbers ({shown})", origin="--points", hint=hint)

    def _use_header(self, header: list[str]) -> None:
        self.header = header
        missing = [name for name in self.required if name not in self.header]
        if missing:
            names = ", ".join(self.header)
            where = f"--columns names {names}" if self.given_columns is not None else \
                f"{self.origin} has the columns {names}"
            raise JacliError(f"no value for {', '.join(repr(m) for m in missing)}: {where}",
                             origin="--points")
        self.used = [j for j, name in enumerate(self.header) if name in self.wanted]
        twice = {self.header[j] for j in self.used if self.header.count(self.header[j]) > 1}
        if twice:
            raise JacliError(f"{self.origin} has the column '{twice.pop()}' twice",
                             origin="--points")

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[Points]:
        """The points, `rows` at a time, in order; at least one (maybe empty) chunk."""
        if self.format in ("npy", "npz"):
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
        if self.format in ("tsv", "ssv"):
            lines = [_as_csv(self._fields(line)) if not isinstance(line, _Undecodable)
                     else line for line in lines]
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


def _is_number(text: str) -> bool:
    try:
        parse_float(text)
    except ValueError:
        return False
    return True


def _as_csv(fields: list[str]) -> str:
    """Fields split on tabs or spaces, as one CSV line for the CSV row parser."""
    if any("," in f or '"' in f for f in fields):
        return ",".join('"' + f.replace('"', '""') + '"' for f in fields)
    return ",".join(fields)


def _check_columns(columns: list[str]) -> None:
    if not columns:
        raise JacliError("no column named: give --columns x,y,...", origin="--columns")
    for name in columns:
        if not (name.isidentifier() and name.isascii()):
            raise JacliError(f"{name!r} is not a variable name", origin="--columns")
        if columns.count(name) > 1:
            raise JacliError(f"'{name}' is named twice", origin="--columns")


def _load_npz(source, wanted: list[str], required: list[str],
              origin: str) -> tuple[np.ndarray, list[str]]:
    """The (B, k) array of the named arrays of an .npz (one per variable, first axis the
    points) that the program uses, and their names."""
    import zipfile

    try:
        with np.load(source, allow_pickle=False) as archive:
            names = list(archive.files)
            missing = [name for name in required if name not in names]
            if missing:
                raise JacliError(f"no value for {', '.join(repr(m) for m in missing)}: "
                                 f"{origin} has the arrays {', '.join(names) or 'none'}",
                                 origin="--points")
            columns = [name for name in names if name in wanted]
            arrays = [archive[name] for name in columns]
            count = len(archive[names[0]]) if names and not columns else None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile):
        raise JacliError(f"{origin} is not a NumPy .npz file of numbers", origin="--points") \
            from None
    length = None
    for name, array in zip(columns, arrays):
        if array.dtype.kind not in "fiub":
            raise JacliError(f"the array '{name}' of {origin} holds {array.dtype}, not numbers",
                             origin="--points")
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise JacliError(f"the array '{name}' of {origin} has shape {array.shape}; "
                             "expected (B,): one value per point", origin="--points")
        if length is not None and len(array) != length:
            raise JacliError(f"the arrays of {origin} differ in length: '{columns[0]}' has "
                             f"{length} values, '{name}' {len(array)}", origin="--points")
        length = len(array)
    if not columns:   # the program reads none of them: as many points as the first has
        return np.empty((count or 0, 0)), []
    return np.column_stack([a.reshape(len(a), -1)[:, 0] for a in arrays]).astype(float), columns


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

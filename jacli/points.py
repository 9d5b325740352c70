"""Where the points come from: `--at` text and `--points` files (CSV, TSV, space-separated,
JSON Lines, .npy, .npz; Parquet in parquet_io.py).

A points file is read in chunks of rows (`PointsReader.chunks`), so memory stays
bounded however long it is. Each chunk becomes columns of equal length plus a
record of its bad rows: a bad row keeps its place (its values are nan) so every
good row still gets its result, in order, and the output can say which row failed.
"""

from __future__ import annotations

import io
import math
import os
import re
import sys
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from .errors import JacliError, shorten

#: Rows per chunk of a points file; a chunk also ends once its lines hold CHUNK_BYTES.
CHUNK_ROWS = 1 << 16
CHUNK_BYTES = 1 << 24
#: The longest line of a points file: a longer one is a bad row, skipped as it is read.
LINE_LIMIT = 1 << 20
#: Bytes asked of the input per read.
READ_SIZE = 1 << 16
#: Seconds without input after which the rows read so far are passed on.
STALL = 0.01


class Points(NamedTuple):
    """Rows `first_row ...` of a points file: one float array (B, *shape) per variable
    ((B,) for a scalar), and the rows (0-based within the chunk) that could not be read."""
    columns: dict[str, np.ndarray]
    count: int
    bad_rows: dict[int, str]   # each chunk has its own dict
    first_row: int = 0

    def good_mask(self) -> np.ndarray:
        mask = np.ones(self.count, dtype=bool)
        if self.bad_rows:
            mask[list(self.bad_rows)] = False
        return mask

    def split(self, rows: int) -> Iterator["Points"]:
        """These points, at most `rows` at a time (itself when it has no more)."""
        if self.count <= rows:
            yield self
            return
        for start in range(0, self.count, rows):
            stop = min(start + rows, self.count)
            yield Points({name: c[start:stop] for name, c in self.columns.items()},
                         stop - start, {row - start: message for row, message
                                        in self.bad_rows.items() if start <= row < stop},
                         self.first_row + start)

    def cut(self, rows: int) -> tuple["Points", "Points"]:
        """The first `rows` of these points, and the rest."""
        pieces = []
        for start, stop in ((0, min(rows, self.count)), (min(rows, self.count), self.count)):
            pieces.append(Points({name: c[start:stop] for name, c in self.columns.items()},
                                 stop - start, {row - start: message for row, message
                                                in self.bad_rows.items() if start <= row < stop},
                                 self.first_row + start))
        return pieces[0], pieces[1]

    @staticmethod
    def concat(chunks: list["Points"]) -> "Points":
        names = {name for chunk in chunks for name in chunk.columns}
        shapes = {name: c.columns[name].shape[1:] for c in chunks for name in c.columns}
        columns = {name: np.concatenate([c.columns.get(name, np.full((c.count,) + shapes[name],
                                                                     np.nan))
                                         for c in chunks]) for name in names}
        bad, offset = {}, 0
        for chunk in chunks:
            bad.update({offset + row: message for row, message in chunk.bad_rows.items()})
            offset += chunk.count
        return Points(columns, offset, bad, chunks[0].first_row if chunks else 0)


#: The only characters a number's field may have around it (spaces and tabs); any other
#: character, Unicode whitespace included (NBSP, U+2003, U+2028, \x1c, \x85), makes
#: it not a number, in the fast and the careful CSV reader alike.
BLANKS = " \t"


def parse_float(text: str) -> float:
    """A float as --at and points files write it: `1e-3`, `-2`, `inf`, `nan`, with
    spaces or tabs around it and nothing else."""
    text = text.strip(BLANKS)
    # float() accepts 1_000, non-ASCII digits and any Unicode whitespace around them.
    if "_" in text or not text.isascii() or not text.isprintable():
        raise ValueError(text)
    return float(text)


def shown(text: str) -> str:
    """A field or name as a message quotes it: its repr, cut in the middle when long."""
    if len(text) <= 40:
        return repr(text)
    return f"{text[:18]!r}...{text[-18:]!r} ({len(text):,} characters)"


def parse_at(items: list[str], origin: str = "--at") -> dict[str, float | np.ndarray]:
    """`["x=1,y=2", "z=pi/4", "W=[[1,2],[3,4]]", "@params.json"]` -> {"x": 1.0, ...,
    "W": array([[1., 2.], [3., 4.]]), ...}.

    A scalar's value is a number or a constant expression of the language (`pi/4`, `1/3`,
    `sqrt(2)`), parsed and evaluated by jacli itself, never by Python; an array's is
    nested bracketed lists of them (commas inside brackets do not separate assignments).
    An item `@FILE` reads the assignments from a JSON file holding one object."""
    values: dict[str, float | np.ndarray] = {}
    files: dict[str, str] = {}   # name -> the @FILE that gave it
    for item in items:
        if item.strip(BLANKS).startswith("@"):
            path = item.strip(BLANKS)[1:]
            from .components import read_values_file

            for name, value in read_values_file(path, origin).items():
                if name in values:
                    raise JacliError(f"'{name}' is given twice ({path} gives it, and "
                                     f"{files.get(name, 'another --at')} too)", origin=origin)
                values[name], files[name] = value, path
            continue
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
                also = f" ({files[name]} gives it too)" if name in files else ""
                raise JacliError(f"'{name}' is given twice{also}", span, item, origin)
            start = offset + len(part) - len(text)
            if text.strip().startswith("["):
                values[name] = _array_value(name, text, item, start, origin)
            else:
                values[name] = _at_value(name, text, item, start, span, origin)
            previous = (name, text)
    return values


def _top_level_parts(item: str) -> Iterator[tuple[str, int]]:
    """The comma-separated parts of `item` and their offsets; commas inside parentheses
    (`x=atan2(1, 2)`) or brackets (`x=[1, 2]`) do not separate."""
    depth, start = 0, 0
    for i, char in enumerate(item):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            yield item[start:i], start
            start = i + 1
    yield item[start:], start


def _array_value(name: str, text: str, item: str, start: int, origin: str) -> np.ndarray:
    """`[[1, 2], [3, pi]]` (text at offset `start` of `item`) as an array. Each element is
    a number or a constant expression; the lists must be of one shape (not ragged)."""
    from .components import array_from_text

    def fail(message: str, where: tuple[int, int], hint: str | None = None) -> JacliError:
        return JacliError(f"the value of '{name}' {message}", where, item, origin, hint=hint)

    def element(first: int, stop: int) -> float:
        pieces = item[first:stop].split()
        if len(pieces) > 1 and all(map(_is_number, pieces)):
            raise fail("has elements without a comma between them", (first, stop),
                       hint=f"separate the elements with commas: [{', '.join(pieces)}]")
        return _at_value(name, item[first:stop], item, first, (first, stop), origin)

    return array_from_text(item, start, start + len(text), element, fail)


def _json_number(value) -> float:
    """A JSON element as a number: a number, or the strings "nan", "inf", "-inf" (and
    numbers written as strings), as jacli's JSON output writes them."""
    if isinstance(value, str):
        try:
            return parse_float(value)
        except ValueError:
            pass
    if isinstance(value, _HugeInteger):
        raise ValueError("has an integer too large for a double")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"is not a number: {_json_text(value)}")


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
                     ".ndjson": "jsonl", ".npy": "npy", ".npz": "npz", ".parquet": "parquet",
                     ".pq": "parquet"}


def guess_format(path: str, explicit: str | None) -> str | None:
    """The format `--points-format` or the ending of `path` tells; None if neither does."""
    if explicit:
        return explicit.lower()
    return FORMATS_BY_SUFFIX.get(Path(path).suffix.lower()) if path != "-" else None


def sniff_format(start: bytes) -> str:
    """The format told by a points file's first bytes: `{` JSON Lines, NumPy's magic .npy,
    a zip .npz, `PAR1` Parquet; anything else CSV."""
    if start.startswith(b"PAR1"):
        return "parquet"
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


class _Lines:
    """The lines of a byte stream, read as they arrive (a read returns what is there).

    The first line end of the stream sets its convention: `\\n` (a `\\r` before it is
    dropped, as for CRLF files) or a lone `\\r` (old Mac files). Any other `\\r` or `\\n`
    is a character of its line, which a CSV or JSON reader then refuses: the row is bad.
    A line longer than LINE_LIMIT bytes is not kept: it is skipped as it is read, and a
    `_BadLine` takes its place. A line that is not UTF-8 becomes a `_BadLine` too.
    """

    def __init__(self, stream, peeked: bool = False):
        self.stream, self.buffer = stream, b""
        try:
            self.fd = stream.fileno()
        except (OSError, ValueError, AttributeError):   # an in-memory stream (tests)
            self.fd = None
        #: The bytes `_peek` left in the stream's buffer (os.read at the descriptor would
        #: miss them), given out by the first read.
        self.held = b""
        if peeked and self.fd is not None and hasattr(stream, "peek"):
            self.held = stream.read1(len(stream.peek(1)))
        self.end: bytes | None = None     # b"\n" or b"\r", once the first line end is seen
        self.started = False              # past a byte-order mark
        self.skipping = False             # inside a line over LINE_LIMIT
        self.done = False

    def ready(self) -> bool:
        """Does the input have more for us within STALL seconds (data, or the end)?
        False when it has stalled (a pipe whose writer is still thinking). (Waiting a
        little keeps a fast writer's rows in whole chunks.)"""
        if self.fd is None or self.done or self.held:
            return True
        import select
        try:
            return bool(select.select([self.fd], [], [], STALL)[0])
        except (OSError, ValueError):
            return True

    def _read(self) -> bytes:
        if self.held:
            data, self.held = self.held, b""
            return data
        if self.fd is not None:
            return os.read(self.fd, READ_SIZE)
        return getattr(self.stream, "read1", self.stream.read)(READ_SIZE)

    def read(self) -> list[str] | None:
        """The lines that one read of the stream completes (maybe none); None once the
        stream has ended and every line was returned."""
        if self.done:
            return None
        data = self._read()
        buffer = self.buffer + data
        if not self.started:
            if len(buffer) < 3 and data:
                self.buffer = buffer
                return []
            buffer, self.started = buffer.removeprefix(b"\xef\xbb\xbf"), True
        if self.end is None:
            cr, lf = buffer.find(b"\r"), buffer.find(b"\n")
            if cr != -1 and (lf == -1 or cr < lf):
                if cr + 1 == len(buffer) and data:   # CRLF or CR alone? the next byte says
                    self.buffer = buffer
                    return []
                self.end = b"\n" if buffer[cr + 1:cr + 2] == b"\n" else b"\r"
            elif lf != -1:
                self.end = b"\n"
        cut = buffer.rfind(self.end) if self.end else -1
        whole, self.buffer = buffer[:cut + 1], buffer[cut + 1:]
        if not data:   # the end: what is left is the last line, without its line end
            self.done = True
            if self.buffer or self.skipping:
                whole, self.buffer = whole + self.buffer + (self.end or b"\n"), b""
        lines = []
        if whole:
            if self.end == b"\n" and b"\r\n" in whole:
                whole = whole.replace(b"\r\n", b"\n")
            end = self.end or b"\n"
            lines = _decode(whole[:-1].split(end), end)
            if self.skipping:           # the end of a line over the limit
                lines[0], self.skipping = _BadLine(TOO_LONG), False
        if len(self.buffer) > LINE_LIMIT:
            self.buffer, self.skipping = b"", True
        return lines


def _decode(raw: list[bytes], end: bytes) -> list[str]:
    """Lines as text; each one over LINE_LIMIT or not UTF-8 is a `_BadLine`."""
    if max(map(len, raw)) > LINE_LIMIT:
        return [_BadLine(TOO_LONG) if len(line) > LINE_LIMIT else _decode([line], end)[0]
                for line in raw]
    try:   # (a line holds no `end`, so joining and splitting again gives the lines)
        return (end.join(raw).decode("utf-8")).split(end.decode())
    except UnicodeDecodeError as error:
        if len(raw) > 1:
            return [line for one in raw for line in _decode([one], end)]
        return [_BadLine(f"is not UTF-8 text (byte {error.start + 1} of the row is "
                         f"{raw[0][error.start]:#04x})")]


class PointsReader:
    """A points file (`-` is standard input), opened and checked: the header must give
    every `required` variable. Only the `wanted` columns are read; others (an id column,
    say) are ignored. `npy_columns` names the columns of an .npy file; `columns`
    (--columns), when given, names the columns of an .npy or of a text file without a
    header row; `shared` the variables that --at gives, which the file must not give too."""

    def __init__(self, path: str, fmt: str | None, wanted: list[str], required: list[str],
                 npy_columns: list[str], columns: list[str] | None = None,
                 shared: list[str] = (), shapes: dict | None = None):
        self.format = guess_format(path, fmt)
        self.origin = "standard input" if path == "-" else path
        self.wanted, self.required, self.given_columns = wanted, required, columns
        self.shared = [name for name in shared if name in wanted]
        self.npy_columns = npy_columns
        #: Shapes that --shape gives; JSON Lines rows must match them, .npz arrays too.
        #: JSON Lines adds the shape of each variable's first row.
        self.shapes: dict[str, tuple[int, ...]] = dict(shapes or {})
        self.declared = dict(shapes or {})
        self.pending: list[str] = []
        if columns is not None:
            _check_columns(columns)
        from .parquet_io import names_parquet

        if names_parquet(path, self.format):   # a file, a directory or a glob
            self._open_parquet(path)
            return
        try:
            binary = sys.stdin.buffer if path == "-" else open(path, "rb")
        except OSError as error:
            raise JacliError(f"cannot read points file {self.origin}: {error.strerror}",
                             origin="--points") from None
        self.binary = binary
        try:
            self._open(path == "-")
        except JacliError:
            self.close()
            raise
        except OSError as error:
            self.close()
            raise JacliError(f"cannot read points file {self.origin}: {error.strerror}",
                             origin="--points") from None

    def _open(self, stdin: bool) -> None:
        """Tell the format (from the first bytes if nothing else says) and read what
        comes before the rows: the .npy header, the CSV header row; an .npz whole."""
        peeked = self.format is None
        if peeked:   # (the peeked bytes stay in the stream's buffer, for _Lines to take)
            self.format = sniff_format(_peek(self.binary))
        if self.format == "parquet":   # told by its first bytes
            self.close()
            self._open_parquet("-" if stdin else self.origin)
            return
        columns = self.given_columns
        if columns is not None and self.format in ("jsonl", "npz"):
            kind = "JSON Lines" if self.format == "jsonl" else ".npz"
            raise JacliError(f"{kind} points name their own columns (--columns is for "
                             "CSV, TSV, space-separated and .npy points)",
                             origin="--columns")
        if self.format == "npz":   # a zip's index is at its end: read whole
            source = io.BytesIO(self.binary.read()) if stdin else self.origin
            self.close()
            self.arrays, self.count = _load_npz(source, self.wanted, self.required,
                                                self.origin, self.shapes)
            return
        if self.format == "npy":   # read a chunk at a time, from a file or a pipe
            from .components import ColumnError, group_columns

            self.columns = columns if columns is not None else self.npy_columns
            try:   # the columns are components: x, or x[0], x[1], ...
                self.groups = group_columns(self.columns, self.wanted)
            except ColumnError as error:
                raise JacliError(f"--columns {error}", origin="--columns") from None
            missing = [name for name in self.required if name not in self.groups]
            if columns is not None and missing:
                raise JacliError(f"no value for {', '.join(shown(m) for m in missing[:5])}: "
                                 f"--columns names {', '.join(columns)}",
                                 origin="--columns")
            _check_declared(self.groups, self.declared, self.origin)
            self.npy = _NpyStream(self.binary, self.columns, self.origin)
            return
        self.lines = _Lines(self.binary, peeked)
        if self.format in ("csv", "tsv", "ssv"):
            self._read_header()

    def _open_parquet(self, path: str) -> None:
        from .parquet_io import ParquetPoints

        self.format, self.binary = "parquet", None
        if path == "-":   # its index is at its end: it would have to be held whole
            raise JacliError("Parquet points cannot be read from standard input: give the "
                             "file's name", origin="--points")
        if self.given_columns is not None:
            raise JacliError("Parquet points name their own columns (--columns is for "
                             "CSV, TSV, space-separated and .npy points)",
                             origin="--columns")
        self.parquet = ParquetPoints(path, self.wanted, self.required, self.shared,
                                     self.shapes, self.declared)

    def close(self) -> None:
        binary = getattr(self, "binary", None)
        if binary is not None and binary is not sys.stdin.buffer:
            binary.close()

    def _next_line(self) -> str | None:
        """The next line (None at the end), for the header."""
        while not self.pending:
            lines = self.lines.read()
            if lines is None:
                return None
            if not lines and self.lines.skipping:   # a header with no end (/dev/zero)
                return _BadLine(TOO_LONG)
            self.pending = lines
        return self.pending.pop(0)

    def _fields(self, line: str) -> list[str]:
        if self.format == "tsv":
            return line.split("\t")
        if self.format == "ssv":   # runs of spaces or tabs (other whitespace is a character)
            return re.split(r"[ \t]+", line.strip(BLANKS))
        import csv   # csv and json are imported where used: --at alone never needs them

        return next(csv.reader([line]), [])

    def _read_header(self) -> None:
        if self.given_columns is not None:   # --columns: the file has no header row
            self._use_header(self.given_columns)
            return
        line = self._next_line()
        while line is not None and not isinstance(line, _BadLine) and not line.strip():
            line = self._next_line()     # blank lines before the header are not rows
        if isinstance(line, _BadLine):
            raise JacliError(f"the header of {self.origin} {line}", origin="--points")
        if line is None:
            raise JacliError(f"{self.origin} is empty: expected a header row naming the "
                             "variables", origin="--points")
        import csv

        try:
            header = [name.strip() for name in self._fields(line)]
        except csv.Error:
            raise JacliError(f"the header of {self.origin} is not a CSV row: it has a line "
                             "break inside a field", origin="--points") from None
        if all(_is_number(name) for name in header):
            self._no_header(header)
        self._use_header(header)

    def _no_header(self, row: list[str]) -> None:
        """The first row holds numbers: say which header (or --columns) would work."""
        names = self.npy_columns if len(self.npy_columns) == len(row) else \
            self.required if len(self.required) == len(row) else None
        numbers = ", ".join(row[:4]) + (", ..." if len(row) > 4 else "")
        if names:
            separator = {"tsv": "\t", "ssv": " "}.get(self.format, ",")
            hint = (f"start it with the header row {separator.join(names)!r}, or pass "
                    f"--columns {','.join(names)}")
        else:
            hint = (f"start it with a header row naming its {len(row)} columns (the "
                    f"variables: {', '.join(self.required) or 'none'}), or pass --columns")
        raise JacliError(f"the first row of {self.origin} must name the variables; it holds "
                         f"numbers ({shorten(numbers, 200)})", origin="--points", hint=hint)

    def _use_header(self, header: list[str]) -> None:
        from .components import ColumnError, group_columns

        self.header = header
        try:
            self.groups = group_columns(header, self.wanted)
        except ColumnError as error:
            where = "--columns" if self.given_columns is not None else self.origin
            raise JacliError(f"{where} {error}", origin="--points") from None
        missing = [name for name in self.required if name not in self.groups]
        if missing:
            names = shorten(', '.join(map(shorten, self.header)), 200)
            where = f"--columns names {names}" if self.given_columns is not None else \
                f"{self.origin} has the columns {names}"
            raise JacliError(f"no value for {', '.join(shown(m) for m in missing[:5])}: "
                             f"{where}", origin="--points")
        self.used = sorted(j for group in self.groups.values() for j in group.columns)
        self.positions = {j: k for k, j in enumerate(self.used)}
        both = [name for name in self.groups if name in self.shared]
        if both:
            raise JacliError(f"{shown(both[0])} is given both by --at and by --points",
                             origin="--points")
        _check_declared(self.groups, self.declared, self.origin)

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[Points]:
        """The points, `rows` at a time (fewer when the lines are long, or when the input
        stalls: a pipe's rows are passed on as they arrive), in order; at least one
        (maybe empty) chunk."""
        if self.format == "parquet":
            yield from self.parquet.chunks(rows)
            return
        if self.format == "npz":   # (read whole when opened)
            for start in range(0, max(self.count, 1), rows):
                stop = min(start + rows, self.count)
                yield Points({name: a[start:stop] for name, a in self.arrays.items()},
                             stop - start, {}, start)
            return
        try:
            if self.format == "npy":
                for points in self.npy.chunks(rows):   # its columns as variables
                    arrays = {}
                    for name, group in self.groups.items():
                        parts = [points.columns[self.columns[j]] for j in group.columns]
                        arrays[name] = parts[0] if not group.shape else np.stack(
                            parts, axis=1).reshape((points.count,) + group.shape)
                    yield points._replace(columns=arrays)
            else:
                yield from self._text_chunks(rows)
        except OSError as error:
            raise JacliError(f"cannot read points file {self.origin}: {error.strerror}",
                             origin="--points") from None
        finally:
            self.close()

    def _text_chunks(self, rows: int) -> Iterator[Points]:
        first, block, size, held = 0, [], 0, []
        lines, self.pending = self.pending, []
        while True:
            if lines is None:        # the end: blank lines still held are not rows
                break
            end = len(lines)
            while end and not lines[end - 1].strip():   # (a _BadLine is never blank)
                end -= 1
            if end:                  # blank lines count as rows only if more follow
                block += held + lines[:end]
                size += sum(map(len, lines[:end]))
                held = lines[end:]
            else:
                held += lines
            while len(block) >= rows or (block and size >= CHUNK_BYTES):
                take = min(rows, len(block))
                yield self._parse(block[:take], first)
                first, block = first + take, block[take:]
                size = sum(map(len, block))
            if block and not self.lines.ready():   # a pipe gone quiet: pass these on
                yield self._parse(block, first)
                first, block, size = first + len(block), [], 0
            lines = self.lines.read()
        if block or not first:
            yield self._parse(block, first)

    def _parse(self, lines: list[str], first_row: int) -> Points:
        from .components import group_table

        bad_lines = {row: str(line) for row, line in enumerate(lines)
                     if isinstance(line, _BadLine)}
        if bad_lines:  # (the NUL spoils the row for both readers; its message is kept)
            lines = ["\0" if row in bad_lines else line for row, line in enumerate(lines)]
        if self.format in ("tsv", "ssv"):   # as CSV lines, for the CSV readers
            lines = [_as_csv(self._fields(line)) for line in lines]
        if self.format == "jsonl":
            points = _parse_jsonl(lines, self.wanted, self.required, self.shared, self.shapes,
                                  self.declared)
        else:
            data = _read_csv_fast(lines, len(self.header), self.used)
            bad: dict[int, str] = {}
            if data is None:
                data, bad = _read_csv_rows(lines, self.header, self.used)
            points = Points(group_table(data, self.positions, self.groups), len(lines), bad)
        points.bad_rows.update(bad_lines)
        return points._replace(first_row=first_row)


class _BadLine(str):
    """A points-file line that cannot be read (not UTF-8, too long); its text is what
    to say about it."""


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
    from .components import split_component

    for name in columns:
        if split_component(name) is None:
            raise JacliError(f"{name!r} is not a variable name", origin="--columns")
        if columns.count(name) > 1:
            raise JacliError(f"'{name}' is named twice", origin="--columns")


def _load_npz(source, wanted: list[str], required: list[str], origin: str,
              shapes: dict) -> tuple[dict[str, np.ndarray], int]:
    """The arrays (B, *shape) of an .npz (one per variable, first axis the points) that
    the program uses, and B. An array (B, 1) is a scalar's unless --shape says (1,)."""
    import zipfile

    from .components import shape_text as _shape_text

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
    length, result = None, {}
    for name, array in zip(columns, arrays):
        if array.dtype.kind not in "fiub":
            raise JacliError(f"the array '{name}' of {origin} holds {array.dtype}, not numbers",
                             origin="--points")
        if array.ndim == 2 and array.shape[1] == 1 and shapes.get(name) != (1,):
            array = array[:, 0]
        if array.ndim == 0:
            raise JacliError(f"the array '{name}' of {origin} has shape (); expected "
                             "(B, ...): the points first", origin="--points")
        if name in shapes and array.shape[1:] != tuple(shapes[name]):
            raise JacliError(f"the array '{name}' of {origin} has shape {array.shape}; "
                             f"--shape says {_shape_text(shapes[name])}: expected "
                             f"{_shape_text((len(array),) + tuple(shapes[name]))}",
                             origin="--points")
        if length is not None and len(array) != length:
            raise JacliError(f"the arrays of {origin} differ in length: '{columns[0]}' has "
                             f"{length} values, '{name}' {len(array)}", origin="--points")
        length = len(array)
        result[name] = array.astype(float)
    return result, (length if columns else count or 0)


TOO_LONG = f"is longer than {LINE_LIMIT:,} bytes"


class _NpyStream:
    """An .npy file or stream, read a chunk of rows at a time (never memory-mapped: a
    file cut short while it is read is an error, not a crash)."""

    def __init__(self, binary, columns: list[str], origin: str):
        from numpy.lib import format as npy

        self.binary, self.columns, self.origin = binary, columns, origin
        not_npy = JacliError(f"{origin} is not a NumPy .npy file of numbers",
                             origin="--points")
        magic = binary.read(6)
        if magic.startswith(b"PK"):
            raise JacliError(f"{origin} is a zip archive (an .npz?), not an .npy file: "
                             "save one array with np.save", origin="--points")
        if magic != b"\x93NUMPY":
            raise not_npy
        version = tuple(binary.read(2))
        try:
            read_header = {(1, 0): npy.read_array_header_1_0,
                           (2, 0): npy.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(version)
            shape, self.fortran, dtype = read_header(binary)
        except (ValueError, SyntaxError, TypeError, EOFError):
            raise not_npy from None
        if dtype.hasobject:
            raise not_npy
        if dtype.kind not in "fiub" or dtype.shape:
            raise JacliError(f"{origin} holds {dtype}, not numbers", origin="--points")
        if len(shape) == 1 and len(columns) == 1:
            shape = (shape[0], 1)
        if len(shape) != 2 or shape[1] != len(columns):
            raise JacliError(f"{origin} has shape {shape}; expected (B, {len(columns)}) "
                             f"with columns {', '.join(columns)} (the --wrt order)",
                             origin="--points")
        self.dtype, (self.count, self.width) = dtype, shape
        self.start = binary.tell() if binary.seekable() else None
        if self.fortran and self.start is None:
            raise JacliError(f"{origin} is in Fortran order, which cannot be read in chunks "
                             "from a pipe: pass it as a file, or save it in C order",
                             origin="--points")
        if self.start is not None:   # a file cut short says so before anything is written
            held = (binary.seek(0, os.SEEK_END) - self.start) // dtype.itemsize
            binary.seek(self.start)
            if held < self.count * self.width:
                raise self.short(held // max(self.width, 1))

    def short(self, rows: int) -> JacliError:
        return JacliError(f"{self.origin} ends after {rows:,} rows: its header says "
                          f"{self.count:,}", origin="--points")

    def chunks(self, rows: int) -> Iterator[Points]:
        rows = max(1, min(rows, CHUNK_BYTES // max(1, self.width * self.dtype.itemsize)))
        for start in range(0, max(self.count, 1), rows):
            size = min(rows, self.count - start)
            block = np.asarray(self._read(start, size), dtype=float)   # (no copy if f8)
            yield Points({name: block[:, j] for j, name in enumerate(self.columns)},
                         size, {}, start)

    def _read(self, start: int, size: int) -> np.ndarray:
        block = np.empty((size, self.width), self.dtype)
        if not self.fortran:
            got = _read_into(self.binary, block)
            if got < block.nbytes:
                raise self.short(start + got // (self.width * self.dtype.itemsize))
            return block
        column = np.empty(size, self.dtype)
        for j in range(self.width):   # column j of a Fortran-order array is contiguous
            self.binary.seek(self.start + (j * self.count + start) * self.dtype.itemsize)
            got = _read_into(self.binary, column)
            if got < column.nbytes:
                raise self.short(start + got // self.dtype.itemsize)
            block[:, j] = column
        return block


def _read_into(binary, array: np.ndarray) -> int:
    """Fill `array` (C-contiguous) from the stream; the bytes read (fewer only at its end)."""
    if not array.nbytes:
        return 0
    view, got = memoryview(array).cast("B"), 0
    while got < len(view):
        part = binary.readinto(view[got:])
        if not part:
            break
        got += part
    return got


#: The bytes a chunk may hold for the fast CSV reader: printable ASCII, tab and the line
#: breaks it is joined with. Anything else (Unicode whitespace above all, which NumPy
#: would strip and parse_float refuses) sends the chunk to the row-by-row reader.
_PLAIN = bytes(range(0x20, 0x7f)) + b"\t\n"


def _read_csv_fast(body: list[str], width: int, used: list[int]) -> np.ndarray | None:
    """All rows at once with NumPy, or None if any row needs a closer look."""
    if not body or not used:
        return np.empty((len(body), len(used)))
    text = "\n".join(body)
    if not text.isascii() or text.encode("ascii").translate(None, _PLAIN):
        return None  # a character that only the row-by-row reader judges
    if text.count(",") != (width - 1) * len(body):
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
    # A field may be as long as its line (the csv module's own limit is 131,072).
    limit = csv.field_size_limit(LINE_LIMIT + 1)
    try:
        for row, line in enumerate(body):
            # One physical line is one row, so an unbalanced quote cannot shift later rows.
            try:
                fields = next(csv.reader([line]), [])
            except csv.Error:      # a stray \r or \n (not the file's line end)
                bad[row] = "has a \\r or \\n inside a field (not the file's line end)"
                continue
            if len(fields) != len(header):
                bad[row] = f"has {len(fields)} fields, the header has {len(header)}"
                continue
            for k, j in enumerate(used):
                try:
                    data[row, k] = parse_float(fields[j])
                except ValueError:
                    bad[row] = (f"the value of {shown(header[j])} is not a number: "
                                f"{shown(fields[j].strip(BLANKS))}")
                    break
    finally:
        csv.field_size_limit(limit)
    return data, bad


def _parse_jsonl(lines: list[str], wanted: list[str], required: list[str],
                 shared: list[str] = (), shapes: dict | None = None,
                 declared: dict | None = None) -> Points:
    """JSON Lines rows as arrays. `shapes` holds the shape each variable must have (from
    --shape, or its first row, added here): a row whose value has another is bad."""
    import json

    from .components import nested_array
    from .components import shape_text as _shape_text

    shapes = {} if shapes is None else shapes
    declared = declared or {}

    def other_shape(name: str, shape: tuple) -> str:
        says = "--shape says" if name in declared else "the first row's"
        return (f"the value of {shown(name)} has shape {_shape_text(shape)}; {says} "
                f"{_shape_text(shapes[name])}")
    columns: dict[str, np.ndarray] = {}
    bad: dict[int, str] = {}
    for row, line in enumerate(lines):
        try:
            record = json.loads(line, parse_int=_json_int)
        except ValueError:
            record = None
        except RecursionError:
            bad[row] = "is nested too deeply to be read as JSON"
            continue
        if not isinstance(record, dict):
            bad[row] = "is not a JSON object"
            continue
        missing = [name for name in required if name not in record]
        if missing:
            bad[row] = f"has no value for {shown(missing[0])}"
            continue
        values = {}
        for name, value in record.items():
            if name not in wanted:
                continue
            if name in shared:   # JSON Lines has no header: each row is checked alone
                bad[row] = f"gives {shown(name)}, which --at gives too"
                break
            if isinstance(value, list):
                raw = value
                try:
                    value = nested_array(value, _json_number)
                except ValueError as error:
                    bad[row] = f"the value of {shown(name)} {error}"
                    break
                shape = shapes.get(name, value.shape)
                if shape == ():   # as v1 says it, for a scalar
                    bad[row] = f"the value of {shown(name)} is not a number: {_json_text(raw)}"
                    break
                if value.shape != shape:
                    bad[row] = other_shape(name, value.shape)
                    break
                values[name] = value
                continue
            if isinstance(value, str):
                try:
                    value = parse_float(value)
                except ValueError:
                    pass
            if isinstance(value, _HugeInteger):
                bad[row] = f"the value of {shown(name)} is an integer too large for a double"
                break
            if isinstance(value, int) and not isinstance(value, bool):
                value = float(value)   # (below 10**299: it cannot overflow)
            if not isinstance(value, float):
                bad[row] = f"the value of {shown(name)} is not a number: {_json_text(value)}"
                break
            if shapes.get(name, ()):
                bad[row] = other_shape(name, ())
                break
            values[name] = value
        if row in bad:
            continue
        for name, value in values.items():
            if name not in columns:
                if name not in shapes:   # the first good row sets each shape
                    shapes[name] = np.shape(value)
                columns[name] = np.full((len(lines),) + shapes[name], np.nan)
            columns[name][row] = value
    return Points(columns, len(lines), bad)


def _check_declared(groups: dict, declared: dict, origin: str) -> None:
    """The columns of a variable make the shape --shape gives it, if it gives one."""
    from .components import shape_text

    for name, group in groups.items():
        if name in declared and group.shape != tuple(declared[name]):
            raise JacliError(f"the columns of {origin} give {shown(name)} the shape "
                             f"{shape_text(group.shape)}; --shape says "
                             f"{shape_text(declared[name])}", origin="--points")


class _HugeInteger(float):
    """A JSON integer beyond the double range (inf, should a message show it): its row
    is bad, for no double is that integer (a JSON 1e400 is a float, and is inf)."""


def _json_int(text: str) -> int | float:
    """A JSON integer: a long one as the double it rounds to, or a `_HugeInteger` if it
    rounds beyond the doubles (2**1024 - 1 does), since int -> float overflows near
    2**1024 and int() refuses 4,300 digits."""
    if len(text) < 300:
        return int(text)
    value = float(text)
    return _HugeInteger(value) if math.isinf(value) else value


def _json_text(value) -> str:
    """A JSON value as a message shows it: short, however deep or long."""
    import json

    try:
        return shorten(json.dumps(value))
    except (RecursionError, ValueError):
        return "an array" if isinstance(value, list) else "an object"

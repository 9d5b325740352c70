"""Parquet points, read through pyarrow (the optional extra `jacli[parquet]`).

pyarrow is imported only when a Parquet file is read or written (`pyarrow()`), so a run
that meets none never loads it, nor needs it installed.

`--points` names a Parquet file, a directory of them or a glob; the files are read one
after another in natural order (part.2 before part.10), each in record batches of at most
a chunk's rows, and only the columns the program uses. A column gives a scalar variable
(`x`), a component (`x[0]`, `W[1][2]`, as CSV headers do), or a whole array variable: a
list column (list, large list or fixed-size list, nested once per axis). A null is a
missing value, as an empty CSV field is: its row is bad and named, every other row is
read; a NaN is a number.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from .errors import JacliError, shorten
from .points import CHUNK_BYTES, Points, shown

#: File endings of Parquet files (a directory's other files are not read).
SUFFIXES = (".parquet", ".pq")
INSTALL = "pip install 'jacli[parquet]'"


def pyarrow(doing: str, origin: str):
    """The pyarrow module, its `parquet` and `compute` loaded; without it, the error
    that says which `pip install` fixes it."""
    try:
        import pyarrow as pa
        import pyarrow.compute  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise JacliError(f"{doing} needs pyarrow, which is not installed: {INSTALL}",
                         origin=origin) from None
    return pa


def names_parquet(path: str, fmt: str | None) -> bool:
    """Does `--points PATH` (with `--points-format FMT`) name Parquet: the format, the
    ending, a directory, or a glob that is not itself a file's name?"""
    if fmt is not None or path == "-":
        return fmt == "parquet"
    return (Path(path).suffix.lower() in SUFFIXES or os.path.isdir(path)
            or (glob.has_magic(path) and not os.path.exists(path)))


def natural_key(path: str) -> list:
    """part.2 before part.10: runs of digits compare as numbers."""
    return [int(piece) if piece.isdigit() else piece for piece in re.split(r"(\d+)", path)]


def files_of(path: str) -> list[str]:
    """The Parquet files that `path` names: itself, a directory's files ending .parquet
    (not those starting with '.' or '_', as _SUCCESS markers), or a glob's matches."""
    if os.path.isdir(path):
        found = [os.path.join(path, name) for name in os.listdir(path)
                 if Path(name).suffix.lower() in SUFFIXES and not name.startswith((".", "_"))
                 and os.path.isfile(os.path.join(path, name))]
        if not found:
            raise JacliError(f"the directory {path} holds no .parquet files",
                             origin="--points")
    elif glob.has_magic(path) and not os.path.exists(path):
        found = [name for name in glob.glob(path) if os.path.isfile(name)]
        if not found:
            raise JacliError(f"no file matches {path}", origin="--points")
    else:
        return [path]
    return sorted(found, key=natural_key)


class _Variable(NamedTuple):
    """How a variable is read from a file's columns: `columns` are the file's columns
    (one for a scalar or a list column; one per component, row-major, otherwise);
    `dims` the list column's sizes per axis (None where each row says), else None;
    `shape` the components' shape (() for a scalar and a list column)."""
    name: str
    columns: list[str]
    dims: list[int | None] | None
    shape: tuple[int, ...]


class _File(NamedTuple):
    path: str
    variables: list[_Variable]   # in the order of their first column in the file
    row_bytes: int               # a row's bytes, decoded (for the rows of a batch)


def _is_list(pa, kind) -> bool:
    return pa.types.is_list(kind) or pa.types.is_large_list(kind) \
        or pa.types.is_fixed_size_list(kind)


def _is_number(pa, kind) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) \
        or pa.types.is_decimal(kind)


class ParquetPoints:
    """The points of Parquet files, as `PointsReader` gives them. `shapes` (the reader's,
    shared) holds what --shape says and, once read, each list column's shape."""

    def __init__(self, path: str, wanted: list[str], required: list[str],
                 shared: list[str], shapes: dict, declared: dict):
        self.pa = pyarrow(f"reading {path}", "--points")
        self.wanted, self.required, self.shared = wanted, required, shared
        self.shapes, self.declared = shapes, declared
        paths = files_of(path)
        self.several = len(paths) > 1
        #: The shape each variable has in the files read so far (None: a size that each
        #: row of a list column says), for the next file to agree with.
        self.file_shapes: dict[str, tuple[str, list[int | None]]] = {}   # (its file, shape)
        self.files = [self._open(p) for p in paths]   # every footer checked before a row

    def _open(self, path: str) -> _File:
        from .components import ColumnError, group_columns

        pa = self.pa
        try:   # (pyarrow's own message for this is long and says less)
            with open(path, "rb"):
                pass
        except OSError as error:
            raise JacliError(f"cannot read points file {path}: {error.strerror}",
                             origin="--points") from None
        try:
            file = pa.parquet.ParquetFile(path)
        except (pa.ArrowException, OSError) as error:
            raise JacliError(f"{path} is not a Parquet file ({shorten(str(error), 80)})",
                             origin="--points") from None
        schema, metadata = file.schema_arrow, file.metadata
        file.close()
        names = schema.names
        try:
            groups = group_columns(names, self.wanted)
        except ColumnError as error:
            raise JacliError(f"{path} {error}", origin="--points") from None
        missing = [name for name in self.required if name not in groups]
        if missing:
            listed = shorten(", ".join(map(shorten, names)), 200)
            raise JacliError(f"no value for {', '.join(shown(m) for m in missing[:5])}: "
                             f"{path} has the columns {listed}", origin="--points")
        both = [name for name in groups if name in self.shared]
        if both:
            raise JacliError(f"{shown(both[0])} is given both by --at and by --points",
                             origin="--points")
        variables, components = [], 0
        for name, group in sorted(groups.items(), key=lambda item: item[1].columns[0]):
            columns = [names[j] for j in group.columns]
            kinds = [schema.field(j).type for j in group.columns]
            dims, kind = [], kinds[0]
            while not group.shape and _is_list(pa, kind):   # one list per axis
                dims.append(kind.list_size if pa.types.is_fixed_size_list(kind) else None)
                kind = kind.value_type
            for column, other in zip(columns, kinds if group.shape else [kind]):
                if not _is_number(pa, other):
                    what = "lists" if _is_list(pa, other) else str(other)
                    raise JacliError(f"the column {shown(column)} of {path} holds {what}, "
                                     "not numbers", origin="--points")
            self._agree(path, name, list(group.shape) if group.shape else dims)
            variables.append(_Variable(name, columns, dims or None, group.shape))
            components += int(np.prod([d or 1 for d in dims])) if dims else len(columns)
        row_bytes = 8 * max(1, components)
        if any(v.dims and None in v.dims for v in variables) and metadata.num_rows:
            read = {column for v in variables for column in v.columns}
            stored = sum(group.column(j).total_uncompressed_size
                         for group in map(metadata.row_group, range(metadata.num_row_groups))
                         for j in range(group.num_columns)
                         if group.column(j).path_in_schema.split(".")[0] in read)
            row_bytes = max(row_bytes, stored // metadata.num_rows)
        return _File(path, variables, row_bytes)

    def _agree(self, path: str, name: str, dims: list[int | None]) -> None:
        """A variable's shape in this file agrees with --shape and the files before."""
        def text(shape) -> str:   # a size each row says is n
            inner = ", ".join("n" if d is None else str(d) for d in shape)
            return f"({inner},)" if len(shape) == 1 else f"({inner})"
        before = self.file_shapes.get(name)
        for says, shape in (("--shape says", self.declared.get(name)),
                            (f"{before[0]} gives" if before else "", before and before[1])):
            if shape is None:
                continue
            if len(shape) != len(dims) or any(a is not None and b is not None and a != b
                                               for a, b in zip(shape, dims)):
                raise JacliError(f"{path} gives {shown(name)} the shape {text(dims)}; "
                                 f"{says} {text(list(shape))}", origin="--points")
        self.file_shapes.setdefault(name, (path, dims))

    def chunks(self, rows: int) -> Iterator[Points]:
        """The points, at most `rows` at a time (fewer when rows are wide), file after
        file; at least one (maybe empty) chunk."""
        first = 0
        for file in self.files:
            reader = self.pa.parquet.ParquetFile(file.path, buffer_size=1 << 20,
                                                 pre_buffer=False)
            size = max(1, min(rows, CHUNK_BYTES // file.row_bytes))
            columns = [column for v in file.variables for column in v.columns]
            file_first = first
            try:
                for batch in reader.iter_batches(batch_size=size, columns=columns):
                    yield self._points(batch, file, first, file_first)
                    first += batch.num_rows
            except (self.pa.ArrowException, OSError) as error:
                raise JacliError(f"cannot read points file {file.path}: "
                                 f"{shorten(str(error), 80)}", origin="--points") from None
            finally:
                reader.close()
        if not first:
            known = {v.name: tuple(self.shapes.get(v.name) or
                                   (v.dims if v.dims and None not in v.dims else ()))
                     for v in self.files[0].variables}
            yield Points({name: np.empty((0,) + shape) for name, shape in known.items()},
                         0, {}, 0)

    def _points(self, batch, file: _File, first_row: int, file_first: int) -> Points:
        count = batch.num_rows
        why = np.zeros(count, dtype=np.int32)   # per row: 0 good, else reasons[why]
        reasons: list[str] = [""]

        def mark(rows: np.ndarray, reason: str) -> None:
            rows = rows[why[rows] == 0]   # a row's first problem is the one told
            if rows.size:
                reasons.append(reason)
                why[rows] = len(reasons) - 1

        columns = {}
        for variable in file.variables:
            if variable.dims is not None:
                values = self._list_values(batch.column(variable.columns[0]), variable, mark)
                if values is not None:
                    columns[variable.name] = values
                continue
            parts = []   # a scalar, or components
            for column in variable.columns:
                values, nulls = _numbers(self.pa, batch.column(column))
                if nulls is not None:
                    mark(np.flatnonzero(nulls), f"the value of {shown(column)} is "
                                                "missing (null)")
                parts.append(values)
            columns[variable.name] = parts[0] if not variable.shape else \
                np.stack(parts, axis=1).reshape((count,) + variable.shape)
        bad = {int(row): reasons[why[row]] for row in np.flatnonzero(why)}
        if self.several:   # the row of its own file too
            offset = first_row - file_first + 1
            bad = {row: f"{message} (row {row + offset} of {file.path})"
                   for row, message in bad.items()}
        return Points(columns, count, bad, first_row)

    def _list_values(self, array, variable: _Variable, mark) -> np.ndarray | None:
        """A list column's rows as one array (B, *shape), bad rows nan; None when no row
        tells the shape yet. Level by level (no recursion): `owner` is the row of each
        element of the level, so that a null or a wrong size spoils its own row alone."""
        pa, name = self.pa, variable.name
        count = len(array)
        known = self.shapes.get(name)
        dims = list(known) if known else list(variable.dims)
        says = "--shape says" if name in self.declared else "the first row's"
        spoiled = np.zeros(count, dtype=bool)   # rows whose elements cannot be placed
        owner = np.arange(count)
        level, row_sizes = array, None
        for axis in range(len(dims)):
            sizes = pa.compute.list_value_length(level)
            nulls = sizes.is_null().to_numpy(zero_copy_only=False)
            sizes = sizes.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
            if axis == 0:
                row_sizes = sizes
                mark(np.flatnonzero(nulls), f"the value of {shown(name)} is missing (null)")
            else:
                mark(owner[nulls], f"the value of {shown(name)} has a missing (null) element")
            spoiled[owner[nulls]] = True
            if dims[axis] is None:   # the first element with a size tells it
                usable = np.flatnonzero(~nulls & (sizes > 0))
                if not usable.size:
                    mark(np.flatnonzero(~spoiled), f"the value of {shown(name)} has an "
                                                   "empty list")
                    return None
                dims[axis] = int(sizes[usable[0]])
            wrong = np.unique(owner[~nulls & (sizes != dims[axis])])
            if wrong.size:
                spoiled[wrong] = True
                if len(dims) == 1:
                    for size in np.unique(row_sizes[wrong]):
                        message = "has an empty list" if size == 0 else \
                            f"has shape ({size},); {says} ({dims[0]},)"
                        mark(wrong[row_sizes[wrong] == size],
                             f"the value of {shown(name)} {message}")
                else:
                    mark(wrong, f"the value of {shown(name)} is ragged or not of the shape "
                                f"({', '.join(map(str, dims))}) ({says})")
            owner = np.repeat(owner, sizes)
            level = pa.compute.list_flatten(level)
        leaves, nulls = _numbers(pa, level)
        if nulls is not None:
            mark(owner[nulls], f"the value of {shown(name)} has a missing (null) element")
        shape = tuple(dims)
        self.shapes.setdefault(name, shape)
        values = np.full((count,) + shape, np.nan)
        values[~spoiled] = leaves[~spoiled[owner]].reshape((-1,) + shape)
        return values


def _numbers(pa, array) -> tuple[np.ndarray, np.ndarray | None]:
    """A numeric Arrow array as float64 (its nulls nan), and where its nulls are (None
    when it has none). Integers beyond 2**53 round, as JSON's do."""
    nulls = array.is_null().to_numpy(zero_copy_only=False) if array.null_count else None
    if not pa.types.is_float64(array.type):
        array = pa.compute.cast(array, pa.float64(), safe=False)
    return array.to_numpy(zero_copy_only=False), nulls

"""Component names and values: how an array variable meets the command line (arrays.md).

A variable of shape (2, 3) has six components, named row-major with one bracket per axis:
`W[0][0]`, `W[0][1]`, ..., `W[1][2]`; a scalar keeps its bare name. Flat tables (the
columns of a CSV file, an .npy file, plain output) hold components; the engine and the
Python API hold arrays of shape (B, *shape). This module turns one into the other, reads
component columns back into variables, and turns nested lists into arrays. It knows
nothing of typer or Rich, and never recurses over user-sized data.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable, Mapping, NamedTuple

import numpy as np

from .errors import JacliError
from .points import BLANKS, _json_int, _json_number, _json_text, _top_level_parts, shown

Shape = tuple[int, ...]

#: A column name: a variable name, then one `[i]` per axis.
_COMPONENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[[0-9]+\])*)\Z")


def component_names(name: str, shape: Shape) -> list[str]:
    """`("x", (3,))` -> x[0], x[1], x[2]; `("W", (1, 2))` -> W[0][0], W[0][1];
    `("s", ())` -> s."""
    if not shape:
        return [name]
    names = [name]
    for size in shape:   # one axis at a time: row-major order
        names = [f"{prefix}[{i}]" for prefix in names for i in range(size)]
    return names


def all_component_names(shapes: Mapping[str, Shape], names: Iterable[str]) -> list[str]:
    """The components of `names` in order, each variable's row-major (a name without
    a shape is a scalar)."""
    return [c for name in names for c in component_names(name, tuple(shapes.get(name, ())))]


def size(shape: Shape) -> int:
    """The number of components of a shape (1 for a scalar)."""
    return int(np.prod(shape, dtype=np.int64))


def shape_text(shape: Shape) -> str:
    """A shape as NumPy prints it: (), (3,), (2, 3)."""
    return str(tuple(int(d) for d in shape))


def split_component(column: str) -> tuple[str, tuple[int, ...]] | None:
    """`"W[1][2]"` -> ("W", (1, 2)); `"x"` -> ("x", ()); None if it is neither."""
    match = _COMPONENT.match(column)
    if not match or not column.isascii():
        return None
    index = tuple(int(i) for i in re.findall(r"\[([0-9]+)\]", match.group(2)))
    return match.group(1), index


def jacobian_names(outputs: list[str], inputs: list[str], d: str = "d") -> list[str]:
    """`dy[1]/dx[0]`: one per output component and input component, outputs first."""
    return [f"{d}{o}/{d}{i}" for o in outputs for i in inputs]


def hessian_names(output: str, inputs: list[str], d: str = "d", d2: str = "d2") -> list[str]:
    """`d2f/dx[0]dx[2]`: one per pair of input components, row-major."""
    return [f"{d2}{output}/{d}{a}{d}{b}" for a in inputs for b in inputs]


# --- flat tables and arrays --------------------------------------------------------------

def flatten(values: Mapping[str, np.ndarray], names: Iterable[str], count: int) -> np.ndarray:
    """The (count, k) table of the components of `names`, from arrays (count, *shape)."""
    parts = [_rows(np.asarray(values[name], dtype=float), count) for name in names]
    return np.concatenate(parts, axis=1) if parts else np.empty((count, 0))


def _rows(value: np.ndarray, count: int) -> np.ndarray:
    """An array (count, *shape) as (count, size)."""
    return value.reshape(count, size(value.shape[1:]))


def unflatten(table: np.ndarray, shapes: Mapping[str, Shape],
              names: Iterable[str]) -> dict[str, np.ndarray]:
    """The arrays (B, *shape) of `names` from a (B, k) table of their components."""
    arrays, start, count = {}, 0, len(table)
    for name in names:
        shape = tuple(shapes.get(name, ()))
        k = size(shape)
        arrays[name] = table[:, start:start + k].reshape((count,) + shape)
        start += k
    return arrays


# --- component columns -------------------------------------------------------------------

class Group(NamedTuple):
    """A variable read from component columns: its shape, and for each component in
    row-major order the position of its column."""
    shape: Shape
    columns: list[int]


class ColumnError(ValueError):
    """Component columns that do not make a variable (the message says why)."""


def group_columns(header: list[str], wanted: Iterable[str]) -> dict[str, Group]:
    """The `wanted` variables that `header` gives, as a column `x` (a scalar) or as
    component columns `x[0]`, `x[1]`, ... in any order. Other columns are ignored.
    ColumnError: a missing component, a variable given both as `x` and `x[0]`,
    components of different ranks, a column twice."""
    wanted = set(wanted)
    found: dict[str, dict[tuple[int, ...], int]] = {}
    for position, column in enumerate(header):
        split = split_component(column)
        if split is None or split[0] not in wanted:
            continue
        name, index = split
        components = found.setdefault(name, {})
        if index in components:
            raise ColumnError(f"has the column {column!r} twice")
        components[index] = position
    groups = {}
    for name, components in found.items():
        ranks = {len(index) for index in components}
        if () in components and len(components) > 1:
            other = next(header[p] for i, p in components.items() if i)
            raise ColumnError(f"gives {name!r} both as the column {name!r} and as "
                              f"components ({other!r})")
        if len(ranks) > 1:
            low = min(components, key=len)
            high = max(components, key=len)
            raise ColumnError(f"gives {name!r} components of different ranks: "
                              f"{header[components[low]]!r} and {header[components[high]]!r}")
        rank = ranks.pop()
        if rank > MAX_RANK:
            raise ColumnError(f"gives {name!r} {rank} indices: at most {MAX_RANK} axes")
        shape = tuple(1 + max(index[axis] for index in components) for axis in range(rank))
        if len(components) != size(shape):
            # The first gap in row-major order is among the first len + 1 indices (however
            # large the shape that one stray column `x[99999999]` says).
            missing = next(index for index in (tuple(int(i) for i in np.unravel_index(k, shape))
                                               for k in range(len(components) + 1))
                           if index not in components)
            raise ColumnError(f"gives components of {name!r} up to {_last(name, shape)!r} "
                              f"but no column {_index_name(name, missing)!r}")
        order = sorted(components)   # row-major, as component_names
        groups[name] = Group(shape, [components[index] for index in order])
    return groups


def _last(name: str, shape: Shape) -> str:
    return _index_name(name, tuple(d - 1 for d in shape))


def _index_name(name: str, index: tuple[int, ...]) -> str:
    return name + "".join(f"[{i}]" for i in index)


def group_table(table: np.ndarray, header_positions: Mapping[int, int],
                groups: Mapping[str, Group]) -> dict[str, np.ndarray]:
    """The arrays (B, *shape) of `groups` from the columns of `table`;
    `header_positions` maps a header position to its column of `table`."""
    count, arrays = len(table), {}
    for name, group in groups.items():
        columns = [header_positions[p] for p in group.columns]
        if not group.shape:
            arrays[name] = table[:, columns[0]]
        else:
            arrays[name] = table[:, columns].reshape((count,) + group.shape)
    return arrays


# --- nested lists ------------------------------------------------------------------------

#: The most axes an array may have (NumPy's own limit).
MAX_RANK = 64


def nested_array(value, leaf: Callable[[object], float]) -> np.ndarray:
    """A number or nested lists of numbers (JSON's) as an array. `leaf` turns each
    element into a float or raises ValueError with what to say. ValueError("ragged: ...")
    when the lists are not of one shape; ValueError for an empty list. Iterative: no
    recursion, however deep."""
    if not isinstance(value, list):
        return np.array(leaf(value))
    shape: list[int] = []
    probe = value
    while isinstance(probe, list):   # the shape the first elements say
        if not probe:
            raise ValueError("has an empty list")
        shape.append(len(probe))
        if len(shape) > MAX_RANK:
            raise ValueError(f"is nested deeper than {MAX_RANK} lists (NumPy's limit)")
        probe = probe[0]
    flat: list[float] = []
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth == len(shape):
            if isinstance(item, list):
                raise ValueError(f"is ragged: a list where a number is expected "
                                 f"(the first elements give shape {shape_text(shape)})")
            flat.append(leaf(item))
            continue
        if not isinstance(item, list) or len(item) != shape[depth]:
            what = f"a list of {len(item)}" if isinstance(item, list) else "a number"
            raise ValueError(f"is ragged: {what} where the first elements give "
                             f"{shape[depth]} (shape {shape_text(shape)})")
        stack.extend((element, depth + 1) for element in reversed(item))
    return np.array(flat, dtype=float).reshape(shape)


def array_from_text(text: str, start: int, end: int, element: Callable[[int, int], float],
                    fail: Callable[..., Exception]) -> np.ndarray:
    """The nested bracketed lists `text[start:end]` (`[[1, 2], [3, pi]]`) as an array.
    `element(first, stop)` gives the number that `text[first:stop]` says (or raises);
    `fail(message, span, hint=None)` makes the error to raise, the span in `text`. The
    lists must be of one shape (not ragged), none empty. A loop with a stack: no
    recursion, however deep."""
    blanks = " \t"
    # The open lists, innermost last: (offset of its '[', [(element shape, span)]).
    lists: list[tuple[int, list]] = []
    flat: list[float] = []
    shape = None
    expect_value, i = True, start
    while i < end:
        char = text[i]
        if char in blanks:
            i += 1
            continue
        if shape is not None:
            raise fail(f"is not a number or a list of numbers: "
                       f"{text[i:end].strip(blanks)!r} follows its closing ']'", (i, end))
        if expect_value and char == "[":
            if len(lists) == MAX_RANK:
                raise fail(f"is nested deeper than {MAX_RANK} lists (NumPy's limit)",
                           (i, i + 1))
            lists.append((i, []))
        elif expect_value and char in ",]":
            if char == "]" and not lists[-1][1]:
                raise fail("has an empty list", (lists[-1][0], i + 1))
            raise fail("has an empty element", (i, i + 1))
        elif expect_value:   # a number or constant expression, up to ',' ']' or '['
            j, depth = i, 0
            while j < end and (depth or text[j] not in ",[]"):
                depth = max(0, depth + {"(": 1, ")": -1}.get(text[j], 0))
                j += 1
            if j < end and text[j] == "[":
                raise fail("is missing a comma before '['", (j, j + 1))
            stop = i + len(text[i:j].rstrip(blanks))
            flat.append(element(i, stop))
            lists[-1][1].append(((), (i, stop)))
            expect_value, i = False, j
            continue
        elif char == ",":
            expect_value = True
        elif char == "]":
            opened, elements = lists.pop()
            first = elements[0][0]
            for other, span in elements[1:]:
                if other != first:
                    raise fail(f"is ragged: this element has shape {shape_text(other)}, "
                               f"the first element {shape_text(first)}", span)
            if lists:
                lists[-1][1].append(((len(elements),) + first, (opened, i + 1)))
            else:
                shape = (len(elements),) + first
        else:
            raise fail("is missing a comma", (i, i + 1))
        i += 1
    if shape is None:
        where = (lists[-1][0], lists[-1][0] + 1) if lists else (start, end)
        raise fail("has an unclosed '['", where)
    return np.array(flat, dtype=float).reshape(shape)


# --- values and shapes from the command line ----------------------------------------------

def read_values_file(path: str, origin: str = "--at") -> dict[str, float | np.ndarray]:
    """The assignments of `--at @FILE`: a JSON file holding one object whose values are
    numbers (or "nan", "inf", "-inf") or nested lists of them. Every error names the file."""
    import json

    if not path:
        raise JacliError("'@' names no file: write --at @params.json", origin=origin)
    try:
        with open(path, "rb") as f:
            data = f.read(VALUES_FILE_LIMIT + 1)
    except OSError as error:
        raise JacliError(f"cannot read {path}: {error.strerror}", origin=origin) from None
    if len(data) > VALUES_FILE_LIMIT:
        raise JacliError(f"{path} is longer than {VALUES_FILE_LIMIT:,} bytes", origin=origin)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise JacliError(f"{path} is not UTF-8 text (byte {error.start + 1} is "
                         f"{data[error.start]:#04x})", origin=origin) from None
    try:
        record = json.loads(text, parse_int=_json_int)
    except json.JSONDecodeError as error:
        raise JacliError(f"not JSON: {error.msg}", (error.pos, error.pos + 1), text,
                         path) from None
    except RecursionError:
        raise JacliError(f"{path} is nested too deeply to be read as JSON",
                         origin=origin) from None
    if not isinstance(record, dict):
        raise JacliError(f"{path} must hold one JSON object, as "
                         '{"W": [[1, 2], [3, 4]], "b": 0.5}, not ' + _json_text(record),
                         origin=origin)
    values: dict[str, float | np.ndarray] = {}
    for name, value in record.items():
        if not (name.isidentifier() and name.isascii()):
            raise JacliError(f"{path}: {shown(name)} is not a variable name", origin=origin)
        try:
            array = nested_array(value, _json_number)
        except ValueError as error:
            raise JacliError(f"{path}: the value of {shown(name)} {error}",
                             origin=origin) from None
        values[name] = float(array) if array.ndim == 0 else array
    return values


#: The largest `--at @FILE`: 256 MiB.
VALUES_FILE_LIMIT = 1 << 28


def parse_shapes(items: list[str], origin: str = "--shape") -> dict[str, tuple[int, ...]]:
    """`["x=3,W=2x3"]` -> {"x": (3,), "W": (2, 3)}: the shapes of variables that no value
    gives (a variable not named is a scalar)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for item in items:
        for part, offset in _top_level_parts(item):
            span = (offset, offset + len(part))
            name, eq, text = part.partition("=")
            name = name.strip()
            if not eq or not name:
                raise JacliError(f"expected name=shape (x=3, W=2x3), got {part.strip()!r}",
                                 span, item, origin)
            if not (name.isidentifier() and name.isascii()):
                raise JacliError(f"{name!r} is not a variable name", span, item, origin)
            if name in shapes:
                raise JacliError(f"'{name}' is given twice", span, item, origin)
            dims = text.strip(BLANKS).split("x")
            if not all(re.fullmatch(r"[0-9]+", d.strip(BLANKS)) for d in dims):
                raise JacliError(f"the shape of '{name}' is not sizes joined by 'x': "
                                 f"{text.strip()!r}", span, item, origin,
                                 hint="e.g. x=3 for a vector, W=2x3 for a matrix")
            shape = tuple(int(d) for d in dims)
            if 0 in shape:
                raise JacliError(f"the shape of '{name}' has a size 0", span, item, origin)
            shapes[name] = shape
    return shapes

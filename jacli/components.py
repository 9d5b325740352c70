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
        shape = tuple(1 + max(index[axis] for index in components) for axis in range(rank))
        expected = component_names(name, shape)
        if len(components) != len(expected):
            have = set(header[p] for p in components.values())
            missing = [c for c in expected if c not in have]
            raise ColumnError(f"gives components of {name!r} up to {_last(name, shape)!r} "
                              f"but no column {missing[0]!r}")
        order = sorted(components)   # row-major, as component_names
        groups[name] = Group(shape, [components[index] for index in order])
    return groups


def _last(name: str, shape: Shape) -> str:
    return name + "".join(f"[{d - 1}]" for d in shape)


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

"""Minimal static shape rules of the array primitives (rule(argument shapes, params) ->
result shape, raising errors.ShapeError naming the shapes). arrays-lang's jacli/shapes.py
has the real ones with caret positions; the lead reconciles the two at the merge."""

from __future__ import annotations

import numpy as np

from .errors import ShapeError


def axes(axis, r: int) -> tuple[int, ...]:
    """The static axes a reduction runs over: all for None (and for a scalar)."""
    if axis is None or r == 0:
        return tuple(range(r))
    return ((axis + r) % r,)


def reduced(shape: tuple, axis) -> tuple:
    out = axes(axis, len(shape))
    return tuple(d for k, d in enumerate(shape) if k not in out)


def key(spec):
    """An index spec (ints and (start, stop, step) triples) as a NumPy index."""
    return tuple(slice(*item) if isinstance(item, tuple) else item for item in spec)


# --- rules --------------------------------------------------------------------

def _fail(message: str):
    raise ShapeError(message)


def _axis_shape(name):
    def rule(shapes, params):
        (shape,), axis = shapes, params[0] if params else None
        if axis is not None and shape and not -len(shape) <= axis < len(shape):
            _fail(f"{name}: axis {axis} is out of range for shape {shape}")
        return reduced(shape, axis) if name != "softmax" else shape
    return rule


def _stack_shape(shapes, params):
    if not shapes:
        _fail("an array literal needs at least one element")
    for s in shapes[1:]:
        if s != shapes[0]:
            _fail(f"array literal elements of shapes {shapes[0]} and {s} differ")
    return (len(shapes),) + tuple(shapes[0])


def _index_shape(shapes, params):
    (shape,), (spec,) = shapes, params
    if len(spec) > len(shape):
        _fail(f"too many indices ({len(spec)}) for shape {shape}")
    for item, d in zip(spec, shape):
        if not isinstance(item, tuple) and not -d <= item < d:
            _fail(f"index {item} is out of range for an axis of length {d} (shape {shape})")
    return np.empty(shape)[key(spec)].shape


def _matmul_shape(shapes, params):
    a, b = shapes
    if not a or not b:
        _fail(f"matmul of shapes {a} and {b}: both must have at least one axis")
    inner_a, inner_b = a[-1], b[0] if len(b) == 1 else b[-2]
    if inner_a != inner_b:
        _fail(f"matmul of shapes {a} and {b}: inner dimensions {inner_a} and {inner_b} differ")
    a2 = a if len(a) > 1 else (1,) + a
    b2 = b if len(b) > 1 else b + (1,)
    try:
        lead = np.broadcast_shapes(a2[:-2], b2[:-2])
    except ValueError:
        _fail(f"matmul of shapes {a} and {b}: batch dimensions do not broadcast")
    out = lead + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


def _vectors_shape(name, outer):
    def rule(shapes, params):
        a, b = shapes
        if len(a) != 1 or len(b) != 1 or (not outer and a != b):
            _fail(f"{name} of shapes {a} and {b}: needs two vectors"
                  + ("" if outer else " of one length"))
        return (a[0], b[0]) if outer else ()
    return rule


def _square(name, result):
    def rule(shapes, params):
        a = shapes[0]
        if len(a) != 2 or a[0] != a[1]:
            _fail(f"{name} of shape {a}: needs a square matrix")
        if name == "solve":
            b = shapes[1]
            if len(b) not in (1, 2) or b[0] != a[0]:
                _fail(f"solve of shapes {a} and {b}: b needs {a[0]} rows")
            return b
        return result(a)
    return rule


def _diag_shape(shapes, params):
    a = shapes[0]
    if len(a) == 1:
        return (a[0], a[0])
    if len(a) == 2:
        return (min(a),)
    _fail(f"diag of shape {a}: needs a vector or a matrix")


def _param_shape(shapes, params):
    return tuple(params[-1])


def _same(shapes, params):
    return shapes[0]

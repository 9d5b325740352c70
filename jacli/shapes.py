"""The shape pass: every node's static shape, from the variables' shapes, before any
evaluation (arrays.md: "Shapes are checked once per run").

A primitive's shape rule is `rule(argument shapes, params) -> result shape`, raising
errors.ShapeError with a message that names the shapes; `Primitive.shape` None means
elementwise NumPy broadcasting. The rules of the structural and linear-algebra ops are
written here, in SHAPE_RULES, and nowhere else: array_prims.py's table takes
`shape=SHAPE_RULES[name]` for every primitive it registers.
This module imports nothing of jacli at load time but errors, so prims.py may import it.

`infer_shapes` runs the rules once, in tape order (a loop: no recursion), and turns a
ShapeError into a JacliError whose caret is under the operator, the call, the offending
subscript or element, or the `axis=k`.
"""

from __future__ import annotations

import math

from .errors import JacliError, ShapeError, shorten

Shape = tuple


def _names(shapes) -> str:
    """`(2,) and (3,)`, `(2,), (3,) and (4,)`."""
    texts = [str(tuple(s)) for s in shapes]
    return texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " and " + texts[-1]


def broadcast(shapes: list[Shape], what: str) -> Shape:
    """NumPy broadcasting of `shapes`, or a ShapeError naming them (`what` is the
    operator or function: `+ of shapes (2,) and (3,): cannot broadcast`)."""
    common = ()
    for shape in shapes:   # the usual case first: one shape, and scalars
        if shape and shape != common:
            if common:
                break
            common = shape
    else:
        return common
    rank = max(len(s) for s in shapes)
    result = []
    for axis in range(-rank, 0):
        size = 1
        for shape in shapes:
            if len(shape) >= -axis:
                n = shape[axis]
                if n != 1:
                    if size not in (1, n):
                        raise ShapeError(f"{what} of shapes {_names(shapes)}: cannot broadcast")
                    size = n
        result.append(size)
    return tuple(result)


# --- the rules ---------------------------------------------------------------------------

def _stack(shapes, params):
    """[a, b, ...]: elements of one shape stacked along a new first axis."""
    first = shapes[0]
    for k, shape in enumerate(shapes):
        if shape != first:
            raise ShapeError(f"array literal with elements of shapes {_names([first, shape])}: "
                             f"element {k} differs from element 0 (a literal is not ragged)",
                             where=k)
    return (len(shapes),) + first


def _index(shapes, params):
    """a[i], A[i, j], a[i:j:k]: params (spec,), an int or a (start, stop, step) triple per
    leading axis. Out-of-range ints are errors; slice bounds are clipped, as in NumPy."""
    (shape,), (spec,) = shapes, params
    if len(spec) > len(shape):
        raise ShapeError(f"index of shape {shape}: {len(spec)} subscripts for "
                         f"{len(shape)} ax{'is' if len(shape) == 1 else 'es'}",
                         where=len(shape))
    result = []
    for axis, item in enumerate(spec):
        size = shape[axis]
        if type(item) is int:
            if not -size <= item < size:
                raise ShapeError(f"index {item} is out of range for axis {axis} of shape "
                                 f"{shape} (size {size})", where=axis)
        else:
            result.append(len(range(*slice(*item).indices(size))))
    return tuple(result) + shape[len(spec):]


def _matmul(shapes, params):
    """a @ b with NumPy matmul semantics: vector @ vector, matrix @ vector, vector @
    matrix, matrix @ matrix, batched over leading axes."""
    a, b = shapes
    what = f"matmul of shapes {_names(shapes)}"
    if not a or not b:
        raise ShapeError(f"{what}: a scalar has no matrix product (use * to scale)")
    inner_a = a[-1]
    inner_b = b[0] if len(b) == 1 else b[-2]
    if inner_a != inner_b:
        raise ShapeError(f"{what}: inner dimensions {inner_a} and {inner_b} differ")
    if len(a) == 1 and len(b) == 1:
        return ()
    if len(b) == 1:
        return a[:-1]
    if len(a) == 1:
        return b[:-2] + b[-1:]
    batch = broadcast([a[:-2], b[:-2]], what + ": batch dimensions") if (
        len(a) > 2 or len(b) > 2) else ()
    return batch + (a[-2], b[-1])


def _axis(name: str, shape: Shape, axis: int) -> int:
    """`axis` normalised by the rank of `shape`, or a ShapeError (caret under axis=). A
    scalar takes axis 0 or -1, as in NumPy (np.sum(3, axis=0) is 3): returned as 0."""
    rank = len(shape)
    if rank == 0 and axis in (0, -1):
        return 0
    if not -rank <= axis < rank:
        raise ShapeError(f"{name} of shape {shape}: axis {axis} is out of range for "
                         f"rank {rank}", where="axis")
    return axis % rank


def _reduction(op: str):
    """sum, mean, prod, max/min (amax/amin), norm, logsumexp: params (axis,), None for
    all the elements."""
    name = {"amax": "max", "amin": "min"}.get(op, op)

    def rule(shapes, params):
        (shape,), (axis,) = shapes, params
        normal = None if axis is None else _axis(name, shape, axis)
        if name in ("max", "min") and (math.prod(shape) if normal is None or not shape
                                       else shape[normal]) == 0:
            # an empty slice (x[5:]): NumPy refuses too; sum is 0, prod 1, norm 0
            where = "axis" if axis is not None else None
            empty = "no elements" if axis is None else f"axis {axis} has no elements"
            raise ShapeError(f"{name} of shape {shape}: {empty} to take the "
                             f"{'largest' if name == 'max' else 'smallest'} of", where=where)
        if normal is None:
            return ()
        return shape[:normal] + shape[normal + 1:]   # () for a scalar
    rule.__name__ = f"_{op}_shape"
    return rule


def _softmax(shapes, params):
    """softmax along an axis (params (axis,), -1 unless written): the shape is kept
    (softmax(3) is 1)."""
    (shape,), (axis,) = shapes, params
    _axis("softmax", shape, axis)
    return shape


def _dot(shapes, params):
    """dot(a, b): the inner product of two vectors (scalars scale, as in NumPy)."""
    a, b = shapes
    if not a or not b:
        return a or b
    if len(a) != 1 or len(b) != 1:
        raise ShapeError(f"dot of shapes {_names(shapes)}: dot takes two vectors "
                         "(use @ for matrices)")
    if a[0] != b[0]:
        raise ShapeError(f"dot of shapes {_names(shapes)}: lengths {a[0]} and {b[0]} differ")
    return ()


def _outer(shapes, params):
    """outer(a, b) of two vectors: (n, m) (a scalar counts as a vector of one, as in
    NumPy)."""
    if any(len(s) > 1 for s in shapes):
        raise ShapeError(f"outer of shapes {_names(shapes)}: outer takes two vectors")
    a, b = shapes
    return (math.prod(a), math.prod(b))


def _transpose(shapes, params):
    return tuple(reversed(shapes[0]))


def _diag(shapes, params):
    """diag(v) of a vector: the diagonal matrix; diag(A) of a matrix: its diagonal."""
    (shape,) = shapes
    if len(shape) == 1:
        return (shape[0], shape[0])
    if len(shape) == 2:
        return (min(shape),)
    raise ShapeError(f"diag of shape {shape}: diag takes a vector or a matrix")


def _trace(shapes, params):
    (shape,) = shapes
    if len(shape) != 2:
        raise ShapeError(f"trace of shape {shape}: trace takes a matrix")
    return ()


def _square(name: str, shape: Shape) -> None:
    if len(shape) < 2:
        raise ShapeError(f"{name} of shape {shape}: {name} takes a square matrix")
    if shape[-1] != shape[-2]:
        raise ShapeError(f"{name} of shape {shape}: the matrix is not square "
                         f"({shape[-2]} x {shape[-1]})")


def _det(shapes, params):
    _square("det", shapes[0])
    return shapes[0][:-2]


def _inv(shapes, params):
    _square("inv", shapes[0])
    return shapes[0]


def _solve(shapes, params):
    """solve(A, b) as NumPy 2: b a vector (n,), or a matrix of right-hand sides (n, k)."""
    a, b = shapes
    what = f"solve of shapes {_names(shapes)}"
    if len(a) < 2 or a[-1] != a[-2]:
        raise ShapeError(f"{what}: the first argument is not a square matrix")
    n = a[-1]
    if not b:
        raise ShapeError(f"{what}: the right-hand side is a scalar, not a vector or a matrix")
    if len(b) == 1:
        if b[0] != n:
            raise ShapeError(f"{what}: the matrix has {n} rows and the right-hand side {b[0]}")
        return a[:-1]
    if b[-2] != n:
        raise ShapeError(f"{what}: the matrix has {n} rows and the right-hand side {b[-2]}")
    batch = broadcast([a[:-2], b[:-2]], what + ": batch dimensions") if (
        len(a) > 2 or len(b) > 2) else ()
    return batch + b[-2:]


def _given_shape(position: int):
    """broadcast_to, sum_to (params (shape,)), index_scatter (params (spec, shape)): the
    result's shape is a parameter."""
    def rule(shapes, params):
        return tuple(params[position])
    return rule


def _swap(shapes, params):
    """The last two axes exchanged (the transpose of each matrix of a stack)."""
    (shape,) = shapes
    return shape[:-2] + shape[-2:][::-1]


def _same(shapes, params):
    """The first argument's shape."""
    return shapes[0]


#: The shape rules of the structural and linear ops, by primitive name (elementwise
#: primitives have none: they broadcast).
SHAPE_RULES = {
    "stack": _stack, "index": _index, "matmul": _matmul,
    **{name: _reduction(name) for name in ("sum", "mean", "prod", "amax", "amin", "norm",
                                           "logsumexp")},
    "softmax": _softmax, "dot": _dot, "outer": _outer, "transpose": _transpose,
    "diag": _diag, "trace": _trace, "det": _det, "inv": _inv, "solve": _solve,
    "broadcast_to": _given_shape(0), "sum_to": _given_shape(0), "index_scatter": _given_shape(1),
    # internal ops of the derivative rules (array_prims.py)
    "reshape": _given_shape(0), "swap": _swap, "prod_others": _same,
    "prod_others_vjp": _same, "adjugate": _same,
}
# How the messages name an op: `amax` is written max(...), `min`/`max` with one argument.
_WRITTEN = {"amax": "max", "amin": "min"}


# --- the pass ----------------------------------------------------------------------------

def infer_shapes(tape, variable_shapes: dict[str, tuple],
                 needed: list[bool] | None = None) -> list[Shape]:
    """The static shape of every node of `tape`, in order; a variable not in
    `variable_shapes` is a scalar. A mismatch raises JacliError with a caret.
    With `needed` (per node), only the nodes the outputs of a run need are checked: a
    `let` the outputs do not use, or an output not selected, may name variables given
    no value, as in v1 (such nodes are never evaluated). Their shapes are inferred where
    the rules allow (a derivative's nodes may coincide with them), else None."""
    from .prims import PRIMITIVES   # here, not at the top: prims.py imports this module

    given = {name: tuple(shape) for name, shape in variable_shapes.items()}
    nodes = tape.nodes
    rules: dict = {}   # op -> its shape rule, or None (elementwise)
    for op in {node.op for node in nodes}:
        primitive = PRIMITIVES.get(op)
        rules[op] = primitive.shape if primitive is not None else None
    if not any(given.values()) and not any(rules.values()):
        return [()] * len(nodes)   # a scalar program (v1): every shape is ()
    shapes: list[Shape] = []
    append = shapes.append
    for index, node in enumerate(nodes):
        op = node.op
        if op == "const":
            append(())
            continue
        if op == "var":
            append(given.get(node.name, ()))
            continue
        args = [shapes[a] for a in node.args]
        rule = rules[op]
        checked = needed is None or needed[index]
        if not checked and None in args:
            append(None)
            continue
        try:
            if rule is not None:
                append(tuple(rule(args, node.params)))
            elif not any(args):          # scalars only
                append(())
            else:
                primitive = PRIMITIVES.get(op)
                symbol = primitive.symbol if primitive is not None else None
                append(broadcast(args, symbol or _WRITTEN.get(op, op)))
        except ShapeError as error:
            if not checked:
                append(None)
                continue
            raise shape_error_at(tape, index, error) from None
    return shapes


def node_shape(op: str, shapes: list[Shape], params: tuple = ()) -> Shape:
    """The shape of one new node, by the same rules as infer_shapes (for node builders
    such as tape.NodeOps, which extend the shape list as they append nodes). Raises
    ShapeError."""
    from .prims import PRIMITIVES

    primitive = PRIMITIVES.get(op)
    rule = primitive.shape if primitive is not None else None
    if rule is not None:
        return tuple(rule(list(shapes), params))
    if not any(shapes):
        return ()
    symbol = primitive.symbol if primitive is not None else None
    return broadcast(list(shapes), symbol or _WRITTEN.get(op, op))


def shape_error_at(tape, index: int, error: ShapeError) -> JacliError:
    """`error` as a JacliError with its caret: under the binary operator of node `index`,
    its offending subscript or element, its `axis=k`, else the node's whole span."""
    node = tape.nodes[index]
    span = node.span
    where = getattr(error, "where", None)
    message = getattr(error, "message", None) or str(error)
    if tape.source and span is not None:
        from .parse import node_details   # the error path only: parses the program again

        nodes, details = node_details(tape.source)
        same = index < len(nodes) and nodes[index].op == node.op \
            and nodes[index].args == node.args
        detail = details.get(index, {}) if same else {}
        if where == "axis" and "axis" in detail:
            span = detail["axis"]
        elif type(where) is int and "items" in detail:
            items = detail["items"]
            span = items[min(where, len(items) - 1)]
        elif "operator" in detail:
            span = detail["operator"]
    return JacliError(message, span, tape.source or None)


def require_scalar_output(tape, shapes: list[Shape], output: str, command: str) -> None:
    """grad and hess need one output with one element (arrays.md): else a JacliError
    under the output naming its shape, suggesting sum(...) or jac."""
    position = tape.outputs.index(output)
    shape = shapes[tape.output_nodes[position]]
    if math.prod(shape) == 1:
        return
    raise JacliError(f"{command} needs an output with one element, but '{shorten(output)}' "
                     f"has shape {shape}", tape.output_spans[position], tape.source or None,
                     hint=f"take sum(...) of it for a scalar, or use jac for the Jacobian of "
                          f"all its {math.prod(shape)} components")

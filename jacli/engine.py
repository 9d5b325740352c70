"""Forward evaluation and reverse sweeps over a tape, vectorized over B points and
over the seed directions of a Jacobian.

Every value is laid out (K, B, *shape): `shape` the node's static shape, B the points
(1 for a value shared by all points: constants, unbatched parameters), K the seed
directions (1 for values; the output components in a reverse sweep, the input
components in a forward sweep, chunked to bound memory). So a whole Jacobian is ONE
sweep. Nothing here knows about parsing, the command line or rendering.

Exact structural zeros: with every output's seed in one sweep, each node remembers which
outputs (reverse) or inputs (forward) have actually reached it (a bitset); rows that
have not are exact zeros and stay so, even where a partial is inf or nan, as with one
sweep per output (0 * inf would be nan).

Symbolic constants: a partial that a rule returns as a plain Python float
(`m.const(...)`) is exact; 0.0 means "no contribution" (skipped), +-1.0 means the
adjoint passes through unchanged. Every other partial is evaluated as its rule says
(prims.NUMERIC), as JAX and PyTorch do. Constant nodes evaluate to (1, 1) arrays, so the
two are never confused.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .errors import line_col
from .prims import PRIMITIVES, static_shape
from .sweeps import (CHAIN, PARTIAL, VALUE, Partials, _accumulate, _as_rows,  # noqa: F401
                     _Rows, _rows, _Sink, batch_total, forward_sweep, reverse_sweep)
from .tape import CONST, VAR, Tape

#: A sweep holds at most about this many floats per node (K chunks of seed directions).
ROW_FLOATS = 1 << 22

_NUMPY_KINDS = {  # NumPy's floating-point error -> what jacli says
    "divide by zero": "division by zero or a pole (result is inf or -inf)",
    "invalid value": "invalid value (result is nan)",
    "overflow": "overflow (result is inf)",
}


class DomainWarning(NamedTuple):
    """A floating-point domain error seen while evaluating one tape entry.

    `in_derivative`: it arose in the derivative, not the value; `in_chain`: not in the
    entry's own partial but where the chain rule combined it with an adjoint or tangent
    (inf * 0, a product that overflows, inf - inf)."""
    kind: str                    # "division by zero (result is inf)", ...
    op: str                      # primitive name
    span: tuple[int, int] | None
    in_derivative: bool
    in_chain: bool = False

    def message(self, source: str) -> str:
        if self.in_chain:
            what = f"chain rule through {self.op}"
        elif self.in_derivative:
            what = f"derivative of {self.op}"
        else:
            what = self.op
        text = f"{what}: {self.kind}"
        if self.span:
            start, end = self.span
            line, col = line_col(source, start)
            snippet = source[start:end]
            if len(snippet) > 40:
                snippet = snippet[:37] + "..."
            text += f" in `{snippet}` at {line}:{col}"
        return text




class WarningLog:
    """Collects floating-point warnings, one per (kind, operation, stage).

    The engine says which entry it is working on (`node`) and on what (`stage`): the
    entry's value, its own partial, or the chain rule's product or sum at it. Entries
    that a derivative rule built (`origins`, from symbolic.gradient_tape) are reported
    as the derivative of the entry whose rule built them."""

    def __init__(self):
        self.seen: dict[tuple, DomainWarning] = {}
        self.node = -1                 # the node being evaluated
        self.stage = VALUE
        self.tape: Tape | None = None
        self.origins: dict[int, tuple[int, bool]] = {}   # rule-built node -> (entry, chain)

    def __call__(self, numpy_kind: str, flag: int) -> None:
        kind = _NUMPY_KINDS.get(numpy_kind, numpy_kind)
        index, in_derivative, in_chain = self.node, self.stage != VALUE, self.stage == CHAIN
        while index in self.origins:   # origins point to earlier entries: this ends
            index, chain = self.origins[index]
            in_derivative, in_chain = True, chain or in_chain
        node = self.tape.nodes[index]
        key = (kind, node.op, in_derivative, in_chain)
        if key not in self.seen:
            self.seen[key] = DomainWarning(kind, node.op, node.span, in_derivative, in_chain)

    def errstate(self):
        return np.errstate(divide="call", invalid="call", over="call", under="ignore", call=self)

    @property
    def warnings(self) -> list[DomainWarning]:
        return list(self.seen.values())


def lift(value) -> np.ndarray:
    """A variable's value (B or 1, *shape) in the runtime layout (1, B, *shape)."""
    return np.asarray(value, dtype=float)[None]


def forward(tape: Tape, env: dict[str, np.ndarray], needed: list[bool], log: WarningLog) -> list:
    """The value of every needed node, (1, B or 1, *shape). `env` maps variable names to
    arrays (B or 1, *shape)."""
    values: list = [None] * len(tape.nodes)
    log.tape, log.stage = tape, VALUE
    # every value of rank 0 (a scalar program at scalar values): NumPy's own functions,
    # with nothing to align
    scalar = not _has_arrays(tape) and all(np.ndim(v) <= 1 for v in env.values())
    with log.errstate():
        for index, node in enumerate(tape.nodes):
            if not needed[index]:
                continue
            if node.op == CONST:
                values[index] = np.full((1, 1), node.value)
            elif node.op == VAR:
                values[index] = lift(env[node.name])
            else:
                log.node = index
                f = PRIMITIVES[node.op].forward
                if scalar:
                    f = getattr(f, "__wrapped__", f)
                values[index] = f(*[values[a] for a in node.args], *node.params)
    return values


def _has_arrays(tape: Tape) -> bool:
    """Does the tape hold an array primitive? (Remembered per tape length.)"""
    return tape._remembered(("arrays",), lambda _: any(
        PRIMITIVES[node.op].shape is not None for node in tape.nodes
        if node.op not in (CONST, VAR)), None)

class Sweep(NamedTuple):
    """Everything one evaluation computed, for the API and the tape view."""
    values: list                 # per node (None where not needed)
    outputs: np.ndarray          # (B, m) over components
    jacobian: np.ndarray | None  # (B, m, n) over components
    adjoints: list[list] | None  # per output: per-node adjoints (reverse mode, keep=True)
    partials: Partials | None


def _size(value) -> int:
    return math.prod(value.shape[2:])


def _gather(values: list, nodes: list[int], batch: int) -> np.ndarray:
    """The nodes' values flat over components, (B, sum of sizes)."""
    sizes = [_size(values[n]) for n in nodes]
    out = np.empty((batch, sum(sizes)))
    start = 0
    for node, size in zip(nodes, sizes):
        v = values[node]
        out[:, start:start + size] = v.reshape(v.shape[1], size)
        start += size
    return out


def _values(tape: Tape, env: dict[str, np.ndarray], batch: int, output_nodes: list[int],
            log: WarningLog) -> tuple[list[bool], list, np.ndarray]:
    """The forward pass: which nodes are needed, every needed node's value, and the
    outputs' values gathered as (B, m)."""
    needed = tape.dependencies(output_nodes)
    values = forward(tape, env, needed, log)
    return needed, values, _gather(values, output_nodes, batch)


def _unit_seeds(shape: tuple, rows: range, start: int) -> np.ndarray:
    """(len(rows), 1, *shape): row r is the unit vector of component r - start."""
    size = int(np.prod(shape, dtype=np.int64))
    seed = np.zeros((len(rows), size))
    components = np.arange(rows.start, rows.stop) - start
    seed[np.arange(len(rows)), components] = 1.0
    return seed.reshape((len(rows), 1) + tuple(shape))


def _chunks(total: int, batch: int, widest: int):
    rows = max(1, ROW_FLOATS // max(1, batch * widest))
    for start in range(0, total, rows):
        yield range(start, min(total, start + rows))


def _segments(sizes: list[int]) -> list[tuple[int, int]]:
    out, start = [], 0
    for size in sizes:
        out.append((start, start + size))
        start += size
    return out


def _seed_chunk(nodes: list[int], shapes: list[tuple], segments, chunk: range,
                live: list[bool], rows: _Rows):
    """Unit seeds for the rows `chunk` of the stacked directions, compact per node (only
    its own rows), and each seeded node's bitset (the outputs/inputs it stands for)."""
    seeds: dict[int, np.ndarray] = {}
    reached: dict[int, int] = {}
    for k, (node, shape, (lo, hi)) in enumerate(zip(nodes, shapes, segments)):
        # (an output or input of no components, an empty slice, has no rows to seed)
        if node is None or not live[k] or hi <= chunk.start or lo >= chunk.stop or lo == hi:
            continue
        part = range(max(lo, chunk.start), min(hi, chunk.stop))
        # a scalar's one row: the symbolic 1.0, as a sweep of its own would start with
        seed = 1.0 if shape == () else _unit_seeds(shape, part, lo)
        seeds[node] = rows.merge(seeds.get(node), reached.get(node, 0), seed, 1 << k)
        reached[node] = reached.get(node, 0) | (1 << k)
    return seeds, reached


def evaluate(tape: Tape, env: dict[str, np.ndarray], batch: int, output_nodes: list[int],
             wrt: list[str] | None, log: WarningLog, keep: bool = False,
             mode: str = "reverse", out: np.ndarray | None = None) -> Sweep:
    """Values of `output_nodes` and, if `wrt` is given, their Jacobian w.r.t. `wrt`, over
    components: ONE reverse sweep seeded with every output component (`mode="reverse"`)
    or one forward sweep seeded with every input component, chunked to bound memory.
    With `keep`, the values, partials and (reverse mode) adjoints are kept for a trace.
    `out`, a zeroed (B, m, n) array, receives the Jacobian (the caller's own result, so
    it is not built here and copied there)."""
    needed, values, outputs = _values(tape, env, batch, output_nodes, log)
    if wrt is None:
        return Sweep(values, outputs, None, None, None)

    depends = tape.depends_on(wrt)
    partials = Partials(tape, values, log)
    wrt_nodes = [tape.variable_nodes.get(name) for name in wrt]
    wrt_shapes = [tuple(np.shape(env[name])[1:]) if name in env else () for name in wrt]
    out_shapes = [static_shape(values[n]) for n in output_nodes]
    out_seg = _segments([math.prod(s) for s in out_shapes])
    in_seg = _segments([math.prod(s) for s in wrt_shapes])
    m, n = out_seg[-1][1] if out_seg else 0, in_seg[-1][1] if in_seg else 0
    jacobian = np.zeros((batch, m, n)) if out is None else out
    widest = 1 if partials.scalar else max((_size(v) for v in values if v is not None),
                                           default=1)
    if mode == "forward":
        owners = np.repeat(np.arange(len(wrt), dtype=np.int64), [hi - lo for lo, hi in in_seg])
        live = [node is not None for node in wrt_nodes]
        for chunk in _chunks(n, batch, widest):
            rows = _rows(owners[chunk.start:chunk.stop].tobytes())
            seeds, reached = _seed_chunk(wrt_nodes, wrt_shapes, in_seg, chunk, live, rows)
            one = rows.single   # one input: every node's rows are all rows, no masks
            tangents = forward_sweep(tape, partials, seeds, depends, needed,
                                     None if one else rows, reached)
            for root, (lo, hi) in zip(output_nodes, out_seg):
                t = tangents[root]
                if t is not None:   # (k, B, *shape) -> (B, size, k), at its k columns
                    t = _as_rows(t, 1)
                    flat = t.reshape(t.shape[:2] + (hi - lo,))
                    columns = chunk.start + (np.arange(len(t)) if one else
                                             rows.positions(partials.reached[root]))
                    jacobian[:, lo:hi, columns] = flat.transpose(1, 2, 0)
        return Sweep(values if keep else [], outputs, jacobian, None, partials if keep else None)
    owners = np.repeat(np.arange(len(output_nodes), dtype=np.int64),
                       [hi - lo for lo, hi in out_seg])
    live = [bool(depends[root]) for root in output_nodes]
    all_adjoints = []
    for chunk in _chunks(m, batch, widest):
        rows = _rows(owners[chunk.start:chunk.stop].tobytes())
        seeds, reached = _seed_chunk(output_nodes, out_shapes, out_seg, chunk, live, rows)
        # one output: every node's rows are all rows, no masks (as a sweep of its own)
        sink = None if keep or rows.single else _Sink(jacobian, rows, chunk, wrt_nodes, in_seg)
        adjoints = reverse_sweep(tape, partials, seeds, depends,
                                 None if rows.single else rows, reached, sink)
        if sink is not None:   # the variables' adjoints went straight into the Jacobian
            continue
        for node, (lo, hi) in zip(wrt_nodes, in_seg):
            a = None if node is None else adjoints[node]
            if a is not None:   # (k, B, *shape) -> (B, k, size), at its k rows
                a = _as_rows(a, 1)
                if a.shape[0] == 1 and hi - lo == 1:   # one row, one component
                    jacobian[:, chunk.start, lo] = a[0].reshape(-1)
                    continue
                flat = a.reshape(a.shape[:2] + (hi - lo,))   # (a variable: every row)
                at = chunk.start + np.arange(len(a))
                if len(at) == chunk.stop - chunk.start:
                    jacobian[:, chunk.start:chunk.stop, lo:hi] = flat.transpose(1, 0, 2)
                else:
                    jacobian[:, at, lo:hi] = flat.transpose(1, 0, 2)
        if keep:
            all_adjoints += _per_output(adjoints, partials.reached, rows, chunk, out_seg,
                                        tape.nodes)
    return Sweep(values if keep else [], outputs, jacobian,
                 all_adjoints if keep else None, partials if keep else None)

def recorded_sweep(tape: Tape, partials: Partials, output_node: int, shape: tuple,
                   depends: list[bool]) -> tuple[list, dict]:
    """One reverse sweep seeded with every component of one output (a row each, K its
    size), keeping every contribution sent, by (entry, argument position): what the
    tape view shows. Each adjoint is the sum of its contributions, in sweep order."""
    record: dict = {}
    seed = _unit_seeds(shape, range(math.prod(shape)), 0)
    adjoints = reverse_sweep(tape, partials, {output_node: seed}, depends, record=record)
    return adjoints, record


def _per_output(adjoints, bits, rows: _Rows, chunk: range, out_seg, nodes) -> list[list]:
    """The sweep's adjoints split into one list per output (its first component's row),
    None where that output never reached the node (as a sweep of its own would give)."""
    per_output = []
    for k, (lo, hi) in enumerate(out_seg):
        if not chunk.start <= lo < chunk.stop:
            continue
        row = lo - chunk.start
        per_output.append([
            None if a is None or not (rows.single or (bits[i] >> k) & 1) else
            _as_rows(a, 1)[row] if nodes[i].op == VAR or rows.single else
            _as_rows(a, 1)[int(np.searchsorted(rows.positions(bits[i]), row))]
            for i, a in enumerate(adjoints)])
    return per_output


def jvp(tape: Tape, env: dict[str, np.ndarray], batch: int, output_nodes: list[int],
        tangent: dict[str, np.ndarray], log: WarningLog) -> tuple[np.ndarray, np.ndarray]:
    """Values (B, m) and J.v (B, m) for the tangent `v` given per variable
    ((B or 1, *shape) each), over components."""
    needed, values, outputs = _values(tape, env, batch, output_nodes, log)
    depends = tape.depends_on(list(tangent))
    seeds = {tape.variable_nodes[name]: lift(t) for name, t in tangent.items()
             if name in tape.variable_nodes}
    tangents = forward_sweep(tape, Partials(tape, values, log), seeds, depends, needed)
    result = np.zeros_like(outputs)
    start = 0
    for node in output_nodes:
        size = _size(values[node])
        t = tangents[node]
        if t is not None:
            result[:, start:start + size] = t.reshape(t.shape[1], size)
        start += size
    return outputs, result


def vjp(tape: Tape, env: dict[str, np.ndarray], batch: int, output_nodes: list[int],
        cotangent: list, wrt: list[str], log: WarningLog) -> tuple[np.ndarray, np.ndarray]:
    """Values (B, m) and u^T.J (B, n) for the cotangent `u` given per output ((B or 1,
    *shape) each, or 0), over components."""
    _, values, outputs = _values(tape, env, batch, output_nodes, log)
    depends = tape.depends_on(wrt)
    seeds: dict[int, object] = {}
    with log.errstate():   # an output named twice gets the sum of its cotangents
        for node, u in zip(output_nodes, cotangent):
            if depends[node]:
                log.node, log.stage = node, CHAIN
                u = np.broadcast_to(np.asarray(u, dtype=float),
                                    (np.shape(u)[:1] or (1,)) + static_shape(values[node]))
                seeds[node] = _accumulate(seeds.get(node), u[None])
    adjoints = reverse_sweep(tape, Partials(tape, values, log), seeds, depends)
    sizes = [int(np.prod(np.shape(env[name])[1:], dtype=np.int64)) if name in env else 1
             for name in wrt]
    result = np.zeros((batch, sum(sizes)))
    for (lo, hi), name in zip(_segments(sizes), wrt):
        node = tape.variable_nodes.get(name)
        a = None if node is None else adjoints[node]
        if a is not None:
            result[:, lo:hi] = a.reshape(a.shape[1], hi - lo)
    return outputs, result


def compressed(tape: Tape, env: dict[str, np.ndarray], batch: int, output_nodes: list[int],
               wrt: list[str], log: WarningLog, pattern, colouring,
               skip_first: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Values (B, m) and the Jacobian's structural nonzeros (B, nnz), in the order of
    `pattern` (sparsity.Sparsity), from one sweep per colour of `colouring`
    (colouring.Colouring): each sweep is seeded with the sum of its colour's unit
    vectors, and each nonzero read where it is alone (colouring.sources). Structural
    zeros are never computed; the nonzeros equal the dense sweep's of the same mode.
    `skip_first`: the first output's component is not a row of the pattern (a Hessian's
    value, before its gradient's components) and is not seeded."""
    needed, values, outputs = _values(tape, env, batch, output_nodes, log)
    from .colouring import sources

    colour_of, index_of = sources(pattern, colouring)
    if skip_first:
        colouring = colouring._replace(colours=np.concatenate([[-1], colouring.colours]))
    nonzeros = np.zeros((batch, pattern.nnz))
    forward_mode = colouring.mode == "forward"
    nodes = [tape.variable_nodes.get(name) for name in wrt] if forward_mode else output_nodes
    shapes = ([tuple(np.shape(env[name])[1:]) if name in env else () for name in wrt]
              if forward_mode else [static_shape(values[n]) for n in output_nodes])
    segments = _segments([math.prod(s) for s in shapes])
    depends = tape.depends_on(wrt)
    partials = Partials(tape, values, log)
    widest = max((_size(v) for v in values if v is not None), default=1)
    for chunk in _chunks(colouring.count, batch, widest):
        seeds: dict[int, np.ndarray] = {}
        for node, shape, (lo, hi) in zip(nodes, shapes, segments):
            if node is None or (not forward_mode and not depends[node]):
                continue
            colours = colouring.colours[lo:hi]
            inside = np.flatnonzero((colours >= chunk.start) & (colours < chunk.stop))
            colours = colours - chunk.start
            if len(inside) == 0:
                continue
            seed = np.zeros((len(chunk), hi - lo))
            seed[colours[inside], inside] = 1.0
            seed = seed.reshape((len(chunk), 1) + shape)
            seeds[node] = _accumulate(seeds.get(node), seed)
        if forward_mode:
            swept = forward_sweep(tape, partials, seeds, depends, needed)
            at = output_nodes
        else:
            swept = reverse_sweep(tape, partials, seeds, depends)
            at = [tape.variable_nodes.get(name) for name in wrt]
        # the compressed result (colours of the chunk, B, components)
        at_shapes = ([static_shape(values[n]) for n in output_nodes] if forward_mode else
                     [tuple(np.shape(env[name])[1:]) if name in env else () for name in wrt])
        total = sum(math.prod(s) for s in at_shapes)
        result = np.zeros((len(chunk), batch, total))
        for node, shape, (lo, hi) in zip(at, at_shapes, _segments(
                [math.prod(s) for s in at_shapes])):
            v = None if node is None else swept[node]
            if v is not None:
                v = np.broadcast_to(v, (len(chunk), batch) + shape)
                result[:, :, lo:hi] = v.reshape(len(chunk), batch, hi - lo)
        mine = np.flatnonzero((colour_of >= chunk.start) & (colour_of < chunk.stop))
        nonzeros[:, mine] = result[colour_of[mine] - chunk.start, :, index_of[mine]].T
    return outputs, nonzeros


def summed_vjp(tape: Tape, env: dict[str, np.ndarray], batch: int, output_nodes: list[int],
               cotangents: list, wrt: list[str], log: WarningLog
               ) -> tuple[np.ndarray, np.ndarray]:
    """Values (B, m), and the sum over the B points of u_k^T.J for K cotangents u_k
    given per output ((K, B or 1, *shape) each, or None): (K, n), over components.

    ONE reverse sweep. What reaches a node shared by every point (B = 1: a parameter
    given once, or what only parameters compute) is summed over the points there, so
    the parameters' adjoints are never held per point; a batched input's adjoint is
    summed over its points at the end."""
    _, values, outputs = _values(tape, env, batch, output_nodes, log)
    depends = tape.depends_on(wrt)
    seeds: dict[int, object] = {}
    directions = 1
    with log.errstate():
        for node, u in zip(output_nodes, cotangents):
            if u is None or not depends[node]:
                continue
            log.node, log.stage = node, CHAIN
            u = np.asarray(u, dtype=float)
            directions = max(directions, len(u))
            if values[node].shape[1] == 1:   # an output shared by every point: B times
                u = batch_total(u, batch)
            seeds[node] = _accumulate(seeds.get(node), u)
    adjoints = reverse_sweep(tape, Partials(tape, values, log), seeds, depends, summed=True)
    sizes = [int(np.prod(np.shape(env[name])[1:], dtype=np.int64)) if name in env else 1
             for name in wrt]
    result = np.zeros((directions, sum(sizes)))
    for (lo, hi), name in zip(_segments(sizes), wrt):
        node = tape.variable_nodes.get(name)
        a = None if node is None else adjoints[node]
        if a is not None:
            a = batch_total(a, batch if values[node].shape[1] != 1 else 1)
            result[:, lo:hi] = np.broadcast_to(a, (directions, 1) + a.shape[2:]).reshape(
                directions, hi - lo)
    return outputs, result

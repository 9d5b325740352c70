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
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from .errors import line_col
from .prims import NUMERIC, PRIMITIVES, VARIADIC, static_shape
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


VALUE, PARTIAL, CHAIN = "value", "partial", "chain"   # what is being evaluated


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


def _is_symbolic(p, c: float) -> bool:
    return type(p) is float and p == c


def _times(adjoint, partial):
    if _is_symbolic(partial, 1.0):
        return adjoint
    if _is_symbolic(partial, -1.0):
        return -adjoint
    if _is_symbolic(adjoint, 1.0):
        return partial
    return NUMERIC.mul(adjoint, partial)   # aligned by static rank


def _times_scalar(adjoint, partial):
    if _is_symbolic(partial, 1.0):
        return adjoint
    if _is_symbolic(partial, -1.0):
        return -adjoint
    if _is_symbolic(adjoint, 1.0):
        return partial
    return adjoint * partial   # rank 0 both: nothing to align


class Partials:
    """Local partial derivatives of elementwise tape entries, computed once and only on
    demand (shared by every chunk of seed directions)."""

    def __init__(self, tape: Tape, values: list, log: WarningLog):
        self.tape, self.values, self.log = tape, values, log
        self.cache: dict[tuple[int, int], object] = {}    # what was asked for
        self._variadic: dict[int, list] = {}               # min/max: all partials at once
        self.scalar = all(v is None or v.ndim == 2 for v in values)   # every shape ()

    def get(self, index: int, position: int):
        key = (index, position)
        if key not in self.cache:
            node = self.tape.nodes[index]
            prim = PRIMITIVES[node.op]
            self.log.node, self.log.stage = index, PARTIAL
            if prim.arity == VARIADIC:   # one pass shares the tie count: linear in n
                if index not in self._variadic:
                    args = [self.values[a] for a in node.args]
                    self._variadic[index] = prim.partials_at(
                        NUMERIC, self.values[index], args, range(len(args)))
                self.cache[key] = self._variadic[index][position]
            else:
                args = [self.values[a] for a in node.args]
                self.cache[key] = prim.partial(NUMERIC, self.values[index], args, position)
        return self.cache[key]

    def cotangent(self, index: int, position: int, g):
        """Argument `position`'s share of the cotangent g of entry `index`, or None."""
        node = self.tape.nodes[index]
        prim = PRIMITIVES[node.op]
        arg = node.args[position]
        if prim.vjp is None:   # elementwise: sum_to(g * partial)
            partial = self.get(index, position)
            if _is_symbolic(partial, 0.0):
                return None
            self.log.node, self.log.stage = index, CHAIN
            c = _times(g, partial)
            if not self.scalar and static_shape(c) != static_shape(self.values[arg]):
                c = NUMERIC.sum_to(c, static_shape(self.values[arg]))
            return c
        if prim.arity > 0 and len(prim.vjp) < prim.arity:
            raise NotImplementedError(f"{node.op} has no derivative rule")
        self.log.node, self.log.stage = index, PARTIAL
        return prim.vjp[position](NUMERIC, g, self.values[index],
                                  [self.values[a] for a in node.args], node.params)

    def tangent(self, index: int, position: int, t):
        """The tangent entry `index` gets from argument `position`'s tangent t, or None."""
        node = self.tape.nodes[index]
        prim = PRIMITIVES[node.op]
        if prim.jvp is None:   # elementwise: t * partial
            partial = self.get(index, position)
            if _is_symbolic(partial, 0.0):
                return None
            self.log.node, self.log.stage = index, CHAIN
            return _times(t, partial)
        self.log.node, self.log.stage = index, PARTIAL
        return prim.jvp[position](NUMERIC, t, self.values[index],
                                  [self.values[a] for a in node.args], node.params)


class _Rows:
    """The seed rows (K) of one chunk and which output (reverse) or input (forward) each
    belongs to. A node holds only the rows that have reached it (compact: (k, B, *shape)
    for the k rows of its bitset of outputs/inputs); every other row is an exact zero,
    never computed, as with one sweep per output (0 * inf would be nan)."""

    def __init__(self, owners: np.ndarray):
        self.owners = owners                  # (K,): the output/input of each row
        self.single = len(set(owners.tolist())) <= 1
        self._positions: dict[int, np.ndarray] = {}
        self._merges: dict[tuple[int, int], tuple] = {}

    def positions(self, bits: int) -> np.ndarray:
        """The chunk's rows of the outputs/inputs in `bits`, in order."""
        if bits not in self._positions:
            self._positions[bits] = np.flatnonzero(
                [(bits >> k) & 1 for k in self.owners.tolist()])
        return self._positions[bits]

    def merge(self, previous, p_bits: int, contribution, c_bits: int):
        """previous + contribution over the union of their rows: a row that only one side
        holds keeps its value exactly (-0.0 + 0.0 would be 0.0)."""
        if previous is None:
            return contribution
        if p_bits == c_bits:
            return previous + contribution
        key = (p_bits, c_bits)
        if key not in self._merges:
            union = self.positions(p_bits | c_bits)
            p, c = self.positions(p_bits), self.positions(c_bits)
            both, c_only = np.intersect1d(p, c), np.setdiff1d(c, p)
            self._merges[key] = (len(union), len(p), len(c), _index(np.searchsorted(union, p)),
                                 _index(np.searchsorted(union, c_only)),
                                 _index(np.searchsorted(c, c_only)),
                                 _index(np.searchsorted(union, both)),
                                 _index(np.searchsorted(p, both)),
                                 _index(np.searchsorted(c, both)))
        n, np_, nc, at_p, at_c_only, c_only, at_both, p_both, c_both = self._merges[key]
        previous, contribution = _as_rows(previous, np_), _as_rows(contribution, nc)
        out = np.empty((n,) + np.broadcast_shapes(previous.shape[1:], contribution.shape[1:]))
        out[at_p] = previous
        if c_only is not None:
            out[at_c_only] = contribution[c_only]
        if c_both is not None:
            out[at_both] = previous[p_both] + contribution[c_both]
        return out

    def into_full(self, buffer, b_bits: int, contribution, c_bits: int):
        """A variable's adjoint over every row of the chunk (it sends nothing on, so rows
        that were never reached may simply stay zeros): the contribution's rows added in
        place, or assigned where they arrive first (keeping -0.0)."""
        key = ("full", b_bits, c_bits)
        if key not in self._merges:
            pos = self.positions(c_bits)
            fresh = self.positions(c_bits & ~b_bits)
            at_fresh = np.searchsorted(pos, fresh)
            old = np.setdiff1d(pos, fresh)
            self._merges[key] = (len(pos), _index(fresh), _index(at_fresh), _index(old),
                                 _index(np.searchsorted(pos, old)))
        n, fresh, at_fresh, old, at_old = self._merges[key]
        contribution = _as_rows(contribution, n)
        tail = contribution.shape[1:]
        if buffer is None:
            buffer = np.zeros((len(self.owners),) + tail)
        elif np.broadcast_shapes(buffer.shape[1:], tail) != buffer.shape[1:]:
            buffer = np.array(np.broadcast_to(
                buffer, buffer.shape[:1] + np.broadcast_shapes(buffer.shape[1:], tail)))
        if fresh is not None:
            buffer[fresh] = contribution[at_fresh]
        if old is not None:
            buffer[old] += contribution[at_old]
        return buffer


def _index(positions: np.ndarray):
    """Row positions as a slice where they run contiguously (cheaper than an index
    array), None where there are none."""
    if len(positions) == 0:
        return None
    start, stop = int(positions[0]), int(positions[-1]) + 1
    if stop - start == len(positions):
        return slice(start, stop)
    return positions


def _as_rows(value, rows: int):
    """A symbolic 1.0 seed (or what it became) as an array of `rows` rows."""
    return value if isinstance(value, np.ndarray) else np.full((rows, 1), value)


@lru_cache(maxsize=64)
def _rows(owners: bytes) -> _Rows:
    """The rows of a chunk, remembered: a batch sweeps the same rows for every chunk of
    points, and their masks and merge indices are worked out once."""
    return _Rows(np.frombuffer(owners, dtype=np.int64))


def _accumulate(previous, contribution):
    return contribution if previous is None else previous + contribution


def reverse_sweep(tape: Tape, partials: Partials, seeds: dict[int, object],
                  depends: list[bool], rows: _Rows | None = None,
                  reached: dict[int, int] | None = None, sink=None) -> list:
    """Adjoints of every node, from cotangent `seeds` at output nodes.

    Entries that receive nothing stay None (a symbolic zero); only nodes that depend on
    an input (`depends`) pass anything on. Without `rows` an adjoint is (K, B, *shape);
    with them (a Jacobian's unit seeds), it holds only the rows of the outputs that have
    reached the node (`partials.reached[node]`, a bitset; `reached` gives the seeds').
    """
    adjoints: list = [None] * len(tape.nodes)
    bits = [0] * len(tape.nodes)
    nodes, log = tape.nodes, partials.log
    for node, seed in seeds.items():
        if rows is None:
            adjoints[node] = _accumulate(adjoints[node], seed)
        elif nodes[node].op == VAR:   # a variable's adjoint is held over every row
            if sink is not None:      # (an output that is a variable: y = x)
                sink(node, bits[node], seed, reached[node])
            else:
                adjoints[node] = rows.into_full(adjoints[node], bits[node], seed,
                                                reached[node])
            bits[node] |= reached[node]
        else:
            adjoints[node] = rows.merge(adjoints[node], bits[node], seed, reached[node])
            bits[node] |= reached[node]
    with log.errstate():   # once: entering np.errstate costs more than a small ufunc
        for index in range(max(seeds, default=-1), -1, -1):
            adjoint = adjoints[index]
            if adjoint is None or not nodes[index].args:
                continue
            elementwise = PRIMITIVES[nodes[index].op].vjp is None and partials.scalar
            for position, arg in enumerate(nodes[index].args):
                if not depends[arg]:
                    continue
                if elementwise:   # the scalar path, as short as one sweep per output was
                    partial = partials.get(index, position)
                    if _is_symbolic(partial, 0.0):
                        continue
                    log.node, log.stage = index, CHAIN
                    contribution = _times_scalar(adjoint, partial)
                else:
                    contribution = partials.cotangent(index, position, adjoint)
                    if contribution is None:
                        continue
                log.node, log.stage = index, CHAIN
                if rows is None:
                    adjoints[arg] = _accumulate(adjoints[arg], contribution)
                elif nodes[arg].op == VAR:
                    if sink is not None:   # straight into the Jacobian's columns
                        sink(arg, bits[arg], contribution, bits[index])
                    else:
                        adjoints[arg] = rows.into_full(adjoints[arg], bits[arg],
                                                       contribution, bits[index])
                    bits[arg] |= bits[index]
                else:
                    adjoints[arg] = rows.merge(adjoints[arg], bits[arg], contribution,
                                               bits[index])
                    bits[arg] |= bits[index]
        partials.reached = bits
        return adjoints


def forward_sweep(tape: Tape, partials: Partials, seeds: dict[int, object],
                  depends: list[bool], needed: list[bool], rows: _Rows | None = None,
                  reached: dict[int, int] | None = None) -> list:
    """Tangents of every node, from tangent `seeds` at variable nodes: the same rules as
    the reverse sweep, in the other direction; with `rows`, compact over the inputs
    that have reached each node (`partials.reached`)."""
    tangents: list = [None] * len(tape.nodes)
    bits = [0] * len(tape.nodes)
    for node, seed in seeds.items():
        tangents[node] = seed
        if rows is not None:
            bits[node] = reached[node]
    nodes, log, values = tape.nodes, partials.log, partials.values
    with log.errstate():
        for index, node in enumerate(nodes):
            if not node.args or not depends[index] or not needed[index]:
                continue
            tangent, mine = None, 0
            for position, arg in enumerate(node.args):
                if tangents[arg] is None:
                    continue
                contribution = partials.tangent(index, position, tangents[arg])
                if contribution is None:
                    continue
                log.node, log.stage = index, CHAIN
                if (not partials.scalar
                        and static_shape(contribution) != static_shape(values[index])):
                    contribution = NUMERIC.broadcast_to(contribution,
                                                        static_shape(values[index]))
                if rows is None:
                    tangent = _accumulate(tangent, contribution)
                else:
                    tangent = rows.merge(tangent, mine, contribution, bits[arg])
                    mine |= bits[arg]
            tangents[index] = tangent
            bits[index] = mine
        partials.reached = bits
        return tangents


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
        if node is None or not live[k] or hi <= chunk.start or lo >= chunk.stop:
            continue
        part = range(max(lo, chunk.start), min(hi, chunk.stop))
        # a scalar's one row: the symbolic 1.0, as a sweep of its own would start with
        seed = 1.0 if shape == () else _unit_seeds(shape, part, lo)
        seeds[node] = rows.merge(seeds.get(node), reached.get(node, 0), seed, 1 << k)
        reached[node] = reached.get(node, 0) | (1 << k)
    return seeds, reached


def evaluate(tape: Tape, env: dict[str, np.ndarray], batch: int, output_nodes: list[int],
             wrt: list[str] | None, log: WarningLog, keep: bool = False,
             mode: str = "reverse") -> Sweep:
    """Values of `output_nodes` and, if `wrt` is given, their Jacobian w.r.t. `wrt`, over
    components: ONE reverse sweep seeded with every output component (`mode="reverse"`)
    or one forward sweep seeded with every input component, chunked to bound memory.
    With `keep`, the values, partials and (reverse mode) adjoints are kept for a trace."""
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
    jacobian = np.zeros((batch, m, n))
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


class _Sink:
    """Adds a variable's contributions straight into its Jacobian columns (reverse mode),
    rows arriving first assigned (keeping -0.0), later ones added in place."""

    def __init__(self, jacobian, rows: _Rows, chunk: range, wrt_nodes, in_seg):
        self.jacobian, self.rows, self.start = jacobian, rows, chunk.start
        self.columns = {node: seg for node, seg in zip(wrt_nodes, in_seg) if node is not None}

    def __call__(self, node: int, b_bits: int, contribution, c_bits: int) -> None:
        lo, hi = self.columns[node]
        rows = self.rows
        key = ("sink", b_bits, c_bits)
        if key not in rows._merges:
            pos = rows.positions(c_bits)
            fresh = rows.positions(c_bits & ~b_bits)
            old = np.setdiff1d(pos, fresh)
            rows._merges[key] = (len(pos), _index(self.start + fresh),
                                 _index(np.searchsorted(pos, fresh)),
                                 _index(self.start + old), _index(np.searchsorted(pos, old)))
        n, fresh, at_fresh, old, at_old = rows._merges[key]
        c = _as_rows(contribution, n)
        c = c.reshape(c.shape[:2] + (hi - lo,)).transpose(1, 0, 2)   # (B, k, size)
        if fresh is not None:
            self.jacobian[:, fresh, lo:hi] = c[:, at_fresh]
        if old is not None:
            self.jacobian[:, old, lo:hi] += c[:, at_old]


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

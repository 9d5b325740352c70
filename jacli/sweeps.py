"""The sweeps: a reverse or forward pass over a tape's rules, seeded with several
directions at once (the K axis of engine.py's (K, B, *shape) layout).

`Partials` evaluates each entry's rules (elementwise partials, cached; the array
primitives' cotangent and tangent rules). With `_Rows`, a node holds only the rows of
the outputs (reverse) or inputs (forward) that have reached it: the other rows are exact
zeros that are never computed (no 0 * inf, no warning), as one sweep per direction would
give; a variable's rows go straight into the Jacobian (`_Sink`).
"""

from __future__ import annotations

import operator
from functools import lru_cache

import numpy as np

from .prims import NUMERIC, PRIMITIVES, SUMMED_VJP, VARIADIC, static_shape
from .tape import VAR, Tape

VALUE, PARTIAL, CHAIN = "value", "partial", "chain"   # what is being evaluated (WarningLog)


def _is_symbolic(p, c: float) -> bool:
    return type(p) is float and p == c


def _times(adjoint, partial, multiply=NUMERIC.mul):
    """adjoint * partial, with no product where the partial is a symbolic 1 or -1 or the
    adjoint a symbolic 1.
    NUMERIC.mul aligns arrays by static rank; with two rank-0 values pass operator.mul."""
    if _is_symbolic(partial, 1.0):
        return adjoint
    if _is_symbolic(partial, -1.0):
        return -adjoint
    if _is_symbolic(adjoint, 1.0):
        return partial
    return multiply(adjoint, partial)


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

    def summed_cotangent(self, index: int, position: int, g):
        """`cotangent` summed over the points of entry `index`, for an argument shared by
        all of them: by the primitive's summed rule (prims.SUMMED_VJP) where it has one,
        else the per-point cotangent, then its sum."""
        node = self.tape.nodes[index]
        rule = SUMMED_VJP.get(node.op, (None,) * len(node.args))[position]
        if rule is not None:
            self.log.node, self.log.stage = index, PARTIAL
            summed = rule(NUMERIC, g, self.values[index],
                          [self.values[a] for a in node.args], node.params)
            if summed is not None:
                return summed
        c = self.cotangent(index, position, g)
        return None if c is None else batch_total(c, self.values[index].shape[1])

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


def batch_total(value, rows: int):
    """The sum over the points (axis 1 of (K, B, *shape), kept as 1) of a value standing
    for `rows` points: pairwise, as NumPy sums a contiguous last axis (error O(log B)
    ulps, not O(B)); a value held once for all of them (B = 1) counts `rows` times."""
    value = np.asarray(value, dtype=float)
    if value.shape[1] == 1:
        return value * rows if rows != 1 else value
    total = np.ascontiguousarray(np.moveaxis(value, 1, -1)).sum(axis=-1)
    return np.expand_dims(total, 1)


def reverse_sweep(tape: Tape, partials: Partials, seeds: dict[int, object],
                  depends: list[bool], rows: _Rows | None = None,
                  reached: dict[int, int] | None = None, sink=None,
                  record: dict | None = None, summed: bool = False) -> list:
    """Adjoints of every node, from cotangent `seeds` at output nodes.

    Entries that receive nothing stay None (a symbolic zero); only nodes that depend on
    an input (`depends`) pass anything on. With `summed` (and no `rows`), what an entry
    passes to an argument shared by every point (B = 1: a parameter given once, or what
    only parameters compute) is summed over the entry's points at once
    (`Partials.summed_cotangent`), so that argument's adjoint is never held per point.
    Without `rows` an adjoint is (K, B, *shape); with them (a Jacobian's unit seeds), it holds only the rows of the outputs that have
    reached the node (`partials.reached[node]`, a bitset; `reached` gives the seeds').
    With `record` (a dict), every contribution sent is kept there, by (entry, argument
    position): the tape view shows them.
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
            points = partials.values[index].shape[1] if summed else 1
            for position, arg in enumerate(nodes[index].args):
                if not depends[arg]:
                    continue
                if points > 1 and partials.values[arg].shape[1] == 1:
                    contribution = partials.summed_cotangent(index, position, adjoint)
                    if contribution is None:
                        continue
                elif elementwise:   # the scalar path, as short as one sweep per output was
                    partial = partials.get(index, position)
                    if _is_symbolic(partial, 0.0):
                        continue
                    log.node, log.stage = index, CHAIN
                    contribution = _times(adjoint, partial, operator.mul)
                else:
                    contribution = partials.cotangent(index, position, adjoint)
                    if contribution is None:
                        continue
                log.node, log.stage = index, CHAIN
                if record is not None:
                    record[(index, position)] = contribution
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

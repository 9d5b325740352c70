"""Forward evaluation and reverse sweeps over a tape, vectorized over B points.

Values are NumPy arrays of shape (B,) (or scalars for nodes that depend on no
variable). Nothing here knows about parsing, the command line or rendering.

Symbolic constants: a partial that a rule returns as a plain Python float
(`m.const(...)`) is exact; 0.0 means "no contribution" (skipped), +-1.0 means the
adjoint passes through unchanged. Every other partial is evaluated as its rule says
(prims.NUMERIC), as JAX and PyTorch do. Constant nodes evaluate to np.float64, so the
two are never confused (np.float64 is not `float` by `type(...) is float`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .errors import line_col
from .prims import NUMERIC, PRIMITIVES, VARIADIC
from .tape import CONST, VAR, Tape

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


def forward(tape: Tape, env: dict[str, np.ndarray], needed: list[bool], log: WarningLog) -> list:
    """The value of every needed node. `env` maps variable names to arrays (B,)."""
    values: list = [None] * len(tape.nodes)
    log.tape, log.stage = tape, VALUE
    with log.errstate():
        for index, node in enumerate(tape.nodes):
            if not needed[index]:
                continue
            if node.op == CONST:
                values[index] = np.float64(node.value)
            elif node.op == VAR:
                values[index] = env[node.name]
            else:
                log.node = index
                values[index] = PRIMITIVES[node.op].forward(*[values[a] for a in node.args])
    return values


def _is_symbolic(p, c: float) -> bool:
    return type(p) is float and p == c


def _times(adjoint, partial):
    if _is_symbolic(partial, 1.0):
        return adjoint
    if _is_symbolic(partial, -1.0):
        return -adjoint
    if _is_symbolic(adjoint, 1.0):
        return partial
    return adjoint * partial


class Partials:
    """Local partial derivatives of tape entries, computed once and only on demand."""

    def __init__(self, tape: Tape, values: list, log: WarningLog):
        self.tape, self.values, self.log = tape, values, log
        self.cache: dict[tuple[int, int], object] = {}    # what was asked for
        self._variadic: dict[int, list] = {}               # min/max: all partials at once

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


def _accumulate(previous, contribution):
    return contribution if previous is None else previous + contribution


def reverse_sweep(tape: Tape, partials: Partials, seeds: dict[int, object],
                  depends: list[bool]) -> list:
    """Adjoints of every node, from cotangent `seeds` at output nodes (a VJP).

    Entries that receive nothing stay None (a symbolic zero); only nodes that
    depend on an input (`depends`) pass anything on.
    """
    adjoints: list = [None] * len(tape.nodes)
    for node, seed in seeds.items():
        adjoints[node] = _accumulate(adjoints[node], seed)
    nodes, log = tape.nodes, partials.log
    with log.errstate():   # once: entering np.errstate costs more than a small ufunc
        for index in range(max(seeds, default=-1), -1, -1):
            adjoint = adjoints[index]
            if adjoint is None or not nodes[index].args:
                continue
            for position, arg in enumerate(nodes[index].args):
                if not depends[arg]:
                    continue
                partial = partials.get(index, position)
                if _is_symbolic(partial, 0.0):
                    continue
                log.node, log.stage = index, CHAIN
                adjoints[arg] = _accumulate(adjoints[arg], _times(adjoint, partial))
        return adjoints


def forward_sweep(tape: Tape, partials: Partials, seeds: dict[int, object],
                  depends: list[bool], needed: list[bool]) -> list:
    """Tangents of every node, from tangent `seeds` at variable nodes (a JVP).

    The same partials as the reverse sweep, multiplied in the other order.
    """
    tangents: list = [None] * len(tape.nodes)
    for node, seed in seeds.items():
        tangents[node] = seed
    nodes, log = tape.nodes, partials.log
    with log.errstate():
        for index, node in enumerate(nodes):
            if not node.args or not depends[index] or not needed[index]:
                continue
            tangent = None
            for position, arg in enumerate(node.args):
                if tangents[arg] is None:
                    continue
                partial = partials.get(index, position)
                if _is_symbolic(partial, 0.0):
                    continue
                log.node, log.stage = index, CHAIN
                tangent = _accumulate(tangent, _times(tangents[arg], partial))
            tangents[index] = tangent
        return tangents


class Sweep(NamedTuple):
    """Everything one evaluation computed, for the API and the tape view."""
    values: list                 # per node (None where not needed)
    outputs: np.ndarray          # (B, m)
    jacobian: np.ndarray | None  # (B, m, n)
    adjoints: list[list] | None  # per output: per-node adjoints (reverse mode, keep=True)
    partials: Partials | None


def _values(tape: Tape, env: dict[str, np.ndarray], batch: int, output_nodes: list[int],
            log: WarningLog) -> tuple[list[bool], list, np.ndarray]:
    """The forward pass: which nodes are needed, every needed node's value, and the
    outputs' values gathered as (B, m)."""
    needed = tape.dependencies(output_nodes)
    values = forward(tape, env, needed, log)
    outputs = np.empty((batch, len(output_nodes)))
    for k, node in enumerate(output_nodes):
        outputs[:, k] = values[node]
    return needed, values, outputs


def evaluate(tape: Tape, env: dict[str, np.ndarray], batch: int, output_nodes: list[int],
             wrt: list[str] | None, log: WarningLog, keep: bool = False,
             mode: str = "reverse") -> Sweep:
    """Values of `output_nodes` and, if `wrt` is given, their Jacobian w.r.t. `wrt`:
    one reverse sweep per output (`mode="reverse"`) or one forward sweep per input.
    With `keep`, the values, partials and (reverse mode) adjoints are kept for a trace."""
    needed, values, outputs = _values(tape, env, batch, output_nodes, log)
    if wrt is None:
        return Sweep(values, outputs, None, None, None)

    depends = tape.depends_on(wrt)
    partials = Partials(tape, values, log)
    jacobian = np.zeros((batch, len(output_nodes), len(wrt)))
    wrt_nodes = [tape.variable_nodes.get(name) for name in wrt]
    all_adjoints = []
    if mode == "forward":
        for j, node in enumerate(wrt_nodes):
            if node is None:
                continue
            tangents = forward_sweep(tape, partials, {node: 1.0}, depends, needed)
            for k, root in enumerate(output_nodes):
                if tangents[root] is not None:
                    jacobian[:, k, j] = tangents[root]
        return Sweep(values if keep else [], outputs, jacobian, None, partials if keep else None)
    for k, root in enumerate(output_nodes):
        adjoints = reverse_sweep(tape, partials, {root: 1.0} if depends[root] else {}, depends)
        for j, node in enumerate(wrt_nodes):
            if node is not None and adjoints[node] is not None:
                jacobian[:, k, j] = adjoints[node]
        if keep:
            all_adjoints.append(adjoints)
    return Sweep(values if keep else [], outputs, jacobian,
                 all_adjoints if keep else None, partials if keep else None)


def jvp(tape: Tape, env: dict[str, np.ndarray], batch: int, output_nodes: list[int],
        tangent: dict[str, np.ndarray], log: WarningLog) -> tuple[np.ndarray, np.ndarray]:
    """Values (B, m) and J.v (B, m) for the tangent `v` given per variable."""
    needed, values, outputs = _values(tape, env, batch, output_nodes, log)
    depends = tape.depends_on(list(tangent))
    seeds = {tape.variable_nodes[name]: t for name, t in tangent.items()
             if name in tape.variable_nodes}
    tangents = forward_sweep(tape, Partials(tape, values, log), seeds, depends, needed)
    result = np.zeros((batch, len(output_nodes)))
    for k, node in enumerate(output_nodes):
        if tangents[node] is not None:
            result[:, k] = tangents[node]
    return outputs, result


def vjp(tape: Tape, env: dict[str, np.ndarray], batch: int, output_nodes: list[int],
        cotangent: list, wrt: list[str], log: WarningLog) -> tuple[np.ndarray, np.ndarray]:
    """Values (B, m) and u^T.J (B, n) for the cotangent `u` given per output."""
    _, values, outputs = _values(tape, env, batch, output_nodes, log)
    depends = tape.depends_on(wrt)
    seeds: dict[int, object] = {}
    with log.errstate():   # an output named twice gets the sum of its cotangents
        for node, u in zip(output_nodes, cotangent):
            if depends[node]:
                log.node, log.stage = node, CHAIN
                seeds[node] = _accumulate(seeds.get(node), u)
    adjoints = reverse_sweep(tape, Partials(tape, values, log), seeds, depends)
    result = np.zeros((batch, len(wrt)))
    for j, name in enumerate(wrt):
        node = tape.variable_nodes.get(name)
        if node is not None and adjoints[node] is not None:
            result[:, j] = adjoints[node]
    return outputs, result

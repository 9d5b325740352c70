"""Derivatives as new tape nodes: reverse mode run on node builders, with simplification.

The reverse sweep of engine.reverse_sweep, with the partial rules of prims.py run on
`SimplifyingOps`, so they emit nodes instead of numbers. Used twice over:
- Hessians: differentiate the gradient nodes once more, numerically (api.py);
- `jacli diff`: print the derivative nodes back as a jacli program (printer.py).

Simplification never changes a value (IEEE-754 included):
- constant folding, when the result is finite (jacli has no literal for inf/nan);
- x + 0, 0 + x, x - 0, x*1, 1*x, x/1, x^1 -> x;  x*(-1), (-1)*x, 0 - x -> -x;  --x -> x;
- x^0 -> 1 (IEEE gives 1 for every x, nan and inf included);
- signs move outward, as IEEE arithmetic is exactly sign-symmetric: a + -b -> a - b,
  -a + b -> b - a, a - -b -> a + b, a*-b and -a*b -> -(a*b) (likewise /), -(c*x) -> (-c)*x;
- 0*x is NOT simplified unless x is a finite constant: 0*inf and 0*nan are nan;
- the internal primitives fold too (`is_zero(2)` -> 0), and `both_zero(c, x)` is 0 for a
  constant c != 0, so pow's guards vanish from the derivative of x^2 or 2^x.
Each node a rule builds remembers the entry it came from (`origins`), so a warning
raised while evaluating it names that entry's derivative (engine.WarningLog).
Identical nodes are shared (the tape's hash-consing): common subexpressions once.
"""

from __future__ import annotations

import math

import numpy as np

from .prims import PRIMITIVES
from .tape import CONST, NodeOps, Tape


class SimplifyingOps(NodeOps):
    """NodeOps that fold constants and drop neutral elements (see the module doc)."""

    def __init__(self, tape: Tape, span=None):
        super().__init__(tape, span)
        self.origin: tuple[int, bool] | None = None   # (entry, chain rule?) of new nodes
        self.origins: dict[int, tuple[int, bool]] = {}
        # Nodes of the source that depend on no variable (`2^3^2`, `-2`) are constants too.
        self.constants: dict[int, float] = {}
        with np.errstate(all="ignore"):
            for index, node in enumerate(tape.nodes):
                if node.op == CONST:
                    self.constants[index] = node.value
                elif node.args and all(a in self.constants for a in node.args):
                    value = float(PRIMITIVES[node.op].forward(
                        *[np.float64(self.constants[a]) for a in node.args]))
                    if math.isfinite(value):
                        self.constants[index] = value

    def _constant(self, index: int) -> float | None:
        node = self.tape.nodes[index]
        return node.value if node.op == CONST else self.constants.get(index)

    def const(self, value: float):
        """A constant of a derivative rule; the rules' 0 (sign' = 0) is a symbolic zero,
        None, that contributes nothing, unlike a 0 the program itself holds (0*inf = nan)."""
        return None if value == 0.0 else self.tape.const(value)

    def apply(self, op: str, args: tuple[int, ...]) -> int:
        values = [self._constant(a) for a in args]
        simpler = self._simplify(op, args, values)   # first: x*1 keeps the name of x
        if simpler is not None:
            return simpler if isinstance(simpler, int) else self.apply(*simpler)
        if args and all(v is not None for v in values):
            with np.errstate(all="ignore"):
                folded = float(PRIMITIVES[op].forward(*[np.float64(v) for v in values]))
            if math.isfinite(folded):
                return self.tape.const(folded)
        length = len(self.tape.nodes)
        index = self.tape.apply(op, args, self.span)
        if index >= length and self.origin is not None:
            self.origins[index] = self.origin
        return index

    def __getattr__(self, op: str):
        if op not in PRIMITIVES:
            raise AttributeError(op)
        return lambda *args: self.apply(op, args)

    def _negated(self, index: int) -> int | None:
        node = self.tape.nodes[index]
        return node.args[0] if node.op == "neg" else None

    def _simplify(self, op, args, values):
        """A simpler equal node (an index), an (op, args) to build instead, or None."""
        negated = [self._negated(a) for a in args]
        if op == "add" and negated[1] is not None:
            return ("sub", (args[0], negated[1]))
        if op == "add" and negated[0] is not None:
            return ("sub", (args[1], negated[0]))
        if op == "sub" and negated[1] is not None:
            return ("add", (args[0], negated[1]))
        if op in ("mul", "div") and (negated[0] is not None or negated[1] is not None):
            inner = (negated[0] if negated[0] is not None else args[0],
                     negated[1] if negated[1] is not None else args[1])
            if (negated[0] is None) != (negated[1] is None):
                return ("neg", (self.apply(op, inner),))
            return (op, inner)
        if op == "add":   # a + (-c)*x -> a - c*x, exactly: (-c)*x = -(c*x)
            for mine, other in ((1, 0), (0, 1)):
                node = self.tape.nodes[args[mine]]
                factor = self._constant(node.args[0]) if node.op == "mul" else None
                if factor is not None and factor < 0:
                    scaled = self.apply("mul", (self.tape.const(-factor), node.args[1]))
                    return ("sub", (args[other], scaled))
        if op == "neg":
            inner = self.tape.nodes[args[0]]
            if inner.op == "mul" and self._constant(inner.args[0]) is not None:
                return ("mul", (self.tape.const(-self._constant(inner.args[0])), inner.args[1]))
        if op == "add":
            if values[1] == 0.0:
                return args[0]
            if values[0] == 0.0:
                return args[1]
        elif op == "sub":
            if values[1] == 0.0:
                return args[0]
            if values[0] == 0.0:
                return ("neg", (args[1],))
        elif op == "mul":
            for mine, other in ((0, 1), (1, 0)):
                if values[mine] == 1.0:
                    return args[other]
                if values[mine] == -1.0:
                    return ("neg", (args[other],))
        elif op == "div":
            if values[1] == 1.0:
                return args[0]
        elif op == "pow":
            if values[1] == 1.0:
                return args[0]
            if values[1] == 0.0:
                return self.tape.const(1.0)
        elif op == "neg":
            inner = self.tape.nodes[args[0]]
            if inner.op == "neg":
                return inner.args[0]
        elif op == "both_zero":   # a constant that is not 0 (nan included) makes it 0
            if any(v is not None and v != 0.0 for v in values):
                return self.tape.const(0.0)
        return None



def gradient_nodes(tape: Tape, root: int, wrt: list[str], ops: SimplifyingOps) -> list[int]:
    """Nodes computing d root / d wrt_j, appended to `tape` (which `ops` builds on).

    Contributions reaching a node are summed in the order of their senders on the tape
    and a partial that starts with a constant is written first, so d/dx x^2*sin(x)
    reads 2*x*sin(x) + x^2*cos(x), as by hand.
    """
    nodes = tape.nodes
    depends = tape.depends_on(wrt)

    def leads_with_constant(index: int) -> bool:
        node = nodes[index]
        return node.op == CONST or (node.op == "mul" and nodes[node.args[0]].op == CONST)

    def times(adjoint: int, partial: int) -> int:
        if leads_with_constant(partial) and not leads_with_constant(adjoint):
            return ops.mul(partial, adjoint)
        return ops.mul(adjoint, partial)

    received: dict[int, list[tuple[int, int]]] = {}   # node -> [(sender, contribution)]
    if depends[root]:
        received[root] = [(root, tape.const(1.0))]
    adjoints: dict[int, int] = {}
    for index in range(root, -1, -1):
        if index not in received:
            continue
        senders = sorted(received.pop(index))
        adjoint = senders[0][1]
        for sender, term in senders[1:]:
            ops.origin = (sender, True)
            adjoint = ops.add(adjoint, term)
        adjoints[index] = adjoint
        node = nodes[index]
        ops.span = node.span
        positions = [p for p, arg in enumerate(node.args) if depends[arg]]
        if not positions:
            continue
        ops.origin = (index, False)
        partials = PRIMITIVES[node.op].partials_at(ops, index, list(node.args), positions)
        ops.origin = (index, True)
        for position, partial in zip(positions, partials):
            if partial is None:   # a rule's symbolic zero
                continue
            received.setdefault(node.args[position], []).append(
                (index, times(adjoint, partial)))
    ops.origin = None
    zero = tape.const(0.0)
    return [adjoints.get(tape.variable_nodes.get(name), zero) for name in wrt]


def gradient_tape(tape: Tape, root: int, wrt: list[str]
                  ) -> tuple[Tape, list[int], dict[int, tuple[int, bool]]]:
    """A copy of `tape` extended with nodes computing d root / d wrt: differentiating
    these once more, numerically, gives the Hessian (reverse over reverse, exact).
    Also which entry each new node comes from (for warnings: engine.WarningLog.origins)."""
    extended = tape.copy()
    ops = SimplifyingOps(extended)
    return extended, gradient_nodes(extended, root, wrt, ops), ops.origins

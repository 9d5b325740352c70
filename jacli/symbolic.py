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

`jacli diff` asks for more (`readable`): products and quotients in the form one writes
by hand, constants folded and first, one division last (3*(2*x) -> 6*x, a*(b/c) -> a*b/c,
a/b/c -> a/(b*c), x*x -> x^2). Regrouping a product may change its rounding (by a few
units in the last place; at overflow or underflow, more), so Hessians do not use it;
the README's "Derivatives as programs" says where the printed values may differ.

On arrays, `jacli diff` takes the derivative of an array output one component at a time
(`jacobian_nodes`: a sweep from a one-hot cotangent per component, the rows stacked), and
`readable` adds rules for arrays (`_array`, `_array_elementwise`): a one-hot and a
structural zero carried through products, sums and reads; reshapes, transposes and
broadcasts that cancel; [A[0], A[1]] -> A; rows one-hot on the diagonal -> diag(v).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from .prims import PRIMITIVES
from .shapes import node_shape
from .tape import CONST, VAR, NodeOps, Tape

#: How many levels of products, quotients and negations a readable rewrite looks into,
#: and how many factors it will reorder: enough for hand-sized terms, and bounded, so
#: that shared subexpressions stay shared and no rewrite recurses deeply.
TERM_DEPTH = 4
MAX_FACTORS = 6


class _Term(NamedTuple):
    """coefficient * product(num) / product(den), the coefficient an exact rational."""
    coefficient: Fraction
    num: list
    den: list


def _coefficient(c: Fraction, fraction: bool) -> tuple[float | None, float]:
    """An exact written form (top, bottom) of c > 0, or (None, 1) if it has none: p/q in
    lowest terms with a small q where the term is a fraction anyway (1/(2*y)) or the
    decimal would be long (2*x/3); else the double (0.5*x, 1.4426950408889634/x); else
    a double over a small integer (0.1*2/3 as 0.2*x/3); else p/q below 2^53."""
    try:
        double = float(c)
    except OverflowError:
        return None, 1.0
    exact = math.isfinite(double) and Fraction(double) == c
    p, q, limit = c.numerator, c.denominator, 2 ** 53
    if 1 < q <= 1000 and p < limit and (not exact or fraction or len(repr(double)) > 6):
        return float(p), float(q)
    if exact:
        return double, 1.0
    for k in range(2, 101) if double < 1e300 else ():
        if Fraction(float(c * k)) == c * k:
            return float(c * k), float(k)
    return (float(p), float(q)) if p < limit and q < limit else (None, 1.0)


class SimplifyingOps(NodeOps):
    """NodeOps that fold constants and drop neutral elements (see the module doc).

    With `readable` (for `jacli diff`), products and quotients are also rewritten in
    the form one writes by hand, which may change a value by rounding (see `_Term`).
    """

    def __init__(self, tape: Tape, span=None, readable: bool = False):
        super().__init__(tape, span)
        self.readable = readable
        self.origin: tuple[int, bool] | None = None   # (entry, chain rule?) of new nodes
        self.origins: dict[int, tuple[int, bool]] = {}
        self.zeros: set[int] = set()   # structural zeros of array derivatives (readable)
        # Nodes of the source that depend on no variable (`2^3^2`, `-2`) are constants too.
        self.constants: dict[int, float] = {}
        with np.errstate(all="ignore"):
            for index, node in enumerate(tape.nodes):
                if node.op == CONST:
                    self.constants[index] = node.value
                elif (node.args and PRIMITIVES[node.op].shape is None
                      and all(a in self.constants for a in node.args)):
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

    def apply(self, op: str, args: tuple[int, ...], params: tuple = ()) -> int:
        args = tuple(args)
        shapes = self.tape.shapes
        if params or PRIMITIVES[op].shape is not None:   # array primitives
            simpler = self._array(op, args, params) if self.readable else None
            return self._new(op, args, params) if simpler is None else simpler
        if shapes is None or all(shapes[a] == () for a in args):
            return self._elementwise(op, args)
        # an elementwise node on arrays: simplified as on scalars, but it keeps its shape
        # (x^0 -> 1 would lose it)
        expected = node_shape(op, [shapes[a] for a in args])
        index = self._array_elementwise(op, args, expected) if self.readable else None
        if index is None:
            index = self._elementwise(op, args)
        if shapes[index] != expected:
            index = self._new("broadcast_to", (index,), (expected,))
        return index

    # --- arrays in readable form (jacli diff) -------------------------------------------
    # The derivative of an array output is built one component at a time, each sweep
    # seeded by a one-hot cotangent index_scatter(1, (i,), shape): these rules carry the
    # one-hot through (so its zeros are structural, as a rule's symbolic zero: they stay 0
    # where a partial is inf or nan), and undo the reshapes and transposes that the
    # rules of @ make, so that d/dx W@x reads W and d/dx sin(x) diag(cos(x)).

    def zero(self, shape: tuple) -> int:
        """A structural zero of `shape` (no contribution), written as zeros."""
        index = self._new("broadcast_to", (self.tape.const(0.0),), (tuple(shape),))
        self.zeros.add(index)
        return index

    def _one_hot(self, index: int):
        """(value, spec, shape) of an index_scatter node, else None."""
        node = self.tape.nodes[index]
        return (node.args[0], *node.params) if node.op == "index_scatter" else None

    def _array_elementwise(self, op: str, args: tuple, expected: tuple) -> int | None:
        shapes, zeros = self.tape.shapes, self.zeros
        if op in ("mul", "div") and (args[0] in zeros or (op == "mul" and args[1] in zeros)):
            return self.zero(expected)
        if op in ("add", "sub") and args[1] in zeros:
            return args[0]
        if op == "add" and args[0] in zeros:
            return args[1]
        if op == "sub" and args[0] in zeros:
            return self.apply("neg", (args[1],))
        if op == "neg" and args[0] in zeros:
            return args[0]
        hot = [self._one_hot(a) for a in args]
        for mine in ((0, 1) if op == "mul" else (0,) if op in ("div", "neg") else ()):
            if hot[mine] is None:
                continue
            value, spec, shape = hot[mine]
            if shape != expected:
                continue
            others = []
            for a in args[:mine] + args[mine + 1:]:
                if shapes[a] not in ((), shape):
                    break
                others.append(a if shapes[a] == () else self.apply("index", (a,), (spec,)))
            else:
                inner = [value] if op == "neg" else (
                    [value] + others if mine == 0 else others + [value])
                return self.apply("index_scatter", (self.apply(op, tuple(inner)),),
                                  (spec, shape))
        for position, a in enumerate(args):   # op(broadcast_to(a, S), b) -> op(a, b)
            node = self.tape.nodes[a]
            if node.op == "broadcast_to" and a not in zeros:
                rest = [shapes[b] for b in args[:position] + args[position + 1:]]
                if node_shape(op, [shapes[node.args[0]]] + rest) == expected:
                    new = args[:position] + (node.args[0],) + args[position + 1:]
                    return self.apply(op, new)
        return None

    def _array(self, op: str, args: tuple, params: tuple) -> int | None:
        """A simpler node equal to op(args, params), or None (readable form only)."""
        tape, shapes, zeros = self.tape, self.tape.shapes, self.zeros
        if shapes is None:
            return None
        nodes = tape.nodes
        result = node_shape(op, [shapes[a] for a in args], params)
        linear = op in ("index", "index_scatter", "broadcast_to", "sum_to", "reshape", "swap",
                        "transpose", "sum", "mean", "diag", "trace", "matmul", "outer", "dot")
        if args and linear and any(a in zeros for a in args) or (
                op == "stack" and all(a in zeros for a in args)):
            return self.zero(result)
        first = nodes[args[0]] if args else None
        if op in ("reshape", "broadcast_to", "sum_to") and shapes[args[0]] == result:
            return args[0]
        if op == "reshape" and first.op == "reshape":
            return self.apply("reshape", first.args, params)
        if op == "broadcast_to" and first.op == "reshape" and shapes[first.args[0]] == ():
            return self.apply("broadcast_to", first.args, params)
        if op in ("swap", "transpose") and first.op == op:
            return first.args[0]
        if op == "swap" and first.op == "reshape" and len(shapes[first.args[0]]) == 1 \
                and 1 in result:   # a column turned into a row, or a row into a column
            return self.apply("reshape", first.args, (result,))
        if op == "index":
            return self._array_index(args[0], params[0], result)
        hot = self._one_hot(args[0]) if op in ("sum", "sum_to") else None
        if hot is not None and all(type(k) is int for k in hot[1]) and (
                result == () if op == "sum_to" else params[0] is None or len(hot[2]) == 1):
            value = hot[0]   # the sum of a one-hot over all its axes: its one value
            return self.apply("sum", (value,), (None,)) if shapes[value] else value
        if op in ("matmul", "dot", "outer"):
            return self._array_product(op, args, result)
        if op == "stack":
            return self._array_stack(args)
        return None

    def _array_index(self, base: int, spec: tuple, result: tuple) -> int | None:
        node, shapes = self.tape.nodes[base], self.tape.shapes
        every = (None, None, None)
        if node.op == "index_scatter":
            if node.params[0] == spec:
                return node.args[0]
            theirs, shape = node.params[0], shapes[base]
            if all(type(k) is int for k in theirs + spec):   # one place read at another
                common = min(len(theirs), len(spec))
                if any(a % n != b % n for a, b, n in zip(theirs, spec, shape)):
                    return self.zero(result)
                if len(theirs) > common:   # the place lies inside what is read
                    return self.apply("index_scatter", node.args,
                                      (theirs[common:], shape[common:]))
                if len(spec) > common:
                    return self.apply("index", node.args, (spec[common:],))
                return node.args[0]
        if node.op == "stack" and spec and type(spec[0]) is int:
            element = node.args[spec[0]]
            return element if len(spec) == 1 else self.apply("index", (element,), (spec[1:],))
        if node.op == "swap" and len(shapes[base]) == 2 and len(spec) == 2 \
                and spec[0] == every and type(spec[1]) is int:
            return self.apply("index", (node.args[0],), ((spec[1],),))
        if node.op == "broadcast_to" and shapes[node.args[0]] == ():
            return self.apply("broadcast_to", node.args, (result,))
        return None

    def _array_product(self, op: str, args: tuple, result: tuple) -> int | None:
        nodes, shapes = self.tape.nodes, self.tape.shapes
        a, b = args
        sa, sb = shapes[a], shapes[b]
        na, nb = nodes[a], nodes[b]

        def vector(node):
            return node.op == "reshape" and len(shapes[node.args[0]]) == 1
        if op == "matmul":
            if vector(na) and vector(nb) and sa[1] == 1 and sb[0] == 1:   # column @ row
                return self.apply("outer", (na.args[0], nb.args[0]))
            if len(sa) == 2 and vector(nb) and sb[1] == 1:        # A @ v as a column
                return self.apply("reshape", (self.apply("matmul", (a, nb.args[0])),),
                                  (result,))
            if len(sb) == 2 and vector(na) and sa[0] == 1:        # v @ B as a row
                return self.apply("reshape", (self.apply("matmul", (na.args[0], b)),),
                                  (result,))
        hot = [self._one_hot(a), self._one_hot(b)]
        for mine, other in ((0, 1), (1, 0)):
            if hot[mine] is None or len(hot[mine][1]) != 1 or type(hot[mine][1][0]) is not int:
                continue
            value, (i,), shape = hot[mine]
            if len(shape) != 1 or shapes[value] != ():
                continue
            so = shapes[args[other]]
            if not (len(so) == 1 or (op == "matmul" and len(so) == 2)):
                continue
            if op == "outer":
                scaled = self.apply("mul", (value, args[other]))
                spec = (i,) if mine == 0 else ((None, None, None), i)
                return self.apply("index_scatter", (scaled,), (spec, result))
            spec = (i,) if (mine == 0 or len(so) == 1) else ((None, None, None), i)
            return self.apply("mul", (value, self.apply("index", (args[other],), (spec,))))
        return None

    def _row_scaled(self, row, k: int) -> tuple[int, int] | None:
        """(p, A) if `row` is p[k]*A[k] (either order), else None."""
        if row.op != "mul":
            return None
        parts = [self.tape.nodes[a] for a in row.args]
        if not all(p.op == "index" and p.params == ((k,),) for p in parts):
            return None
        p, a = (part.args[0] for part in parts)
        if len(self.tape.shapes[p]) != 1:
            p, a = a, p
        return (p, a) if len(self.tape.shapes[p]) == 1 else None

    def _array_stack(self, args: tuple) -> int | None:
        """[A[0], A[1], ...] -> A; rows one-hot on the diagonal -> diag([...])."""
        nodes, shapes = self.tape.nodes, self.tape.shapes
        n = len(args)
        rows = [nodes[a] for a in args]
        if all(r.op == "index" and r.params == ((k,),) and r.args == rows[0].args
               for k, r in enumerate(rows)) and shapes[rows[0].args[0]][0] == n:
            return rows[0].args[0]
        halves = [self._row_scaled(r, k) for k, r in enumerate(rows)]
        if all(h is not None and h == halves[0] for h in halves) and \
                shapes[halves[0][0]] == (n,) and shapes[halves[0][1]][0] == n:
            scale, matrix = halves[0]   # [p[0]*A[0], p[1]*A[1], ...] -> diag(p) @ A
            return self.apply("matmul", (self.apply("diag", (scale,)), matrix))
        if all(r.op == "index_scatter" and r.params == ((k,), (n,))
               and shapes[r.args[0]] == () for k, r in enumerate(rows)):
            return self.apply("diag", (self.apply("stack", tuple(r.args[0] for r in rows)),))
        return None

    def _new(self, op: str, args: tuple[int, ...], params: tuple = ()) -> int:
        length = len(self.tape.nodes)
        index = self.tape.apply(op, args, self.span, params)
        if index >= length and self.origin is not None:
            self.origins[index] = self.origin
        return index

    def _elementwise(self, op: str, args: tuple[int, ...]) -> int:
        values = [self._constant(a) for a in args]
        constant = bool(args) and all(v is not None for v in values)
        if self.readable and not constant:
            readable = self._readable(op, args)
            if readable is not None:
                return readable
        simpler = self._simplify(op, args, values)   # first: x*1 keeps the name of x
        if simpler is not None:
            return simpler if isinstance(simpler, int) else self.apply(*simpler)
        if constant:
            with np.errstate(all="ignore"):
                folded = float(PRIMITIVES[op].forward(*[np.float64(v) for v in values]))
            # 1/3 stays a quotient when printed: it reads better than 0.3333333333333333
            inexact = (self.readable and op == "div" and values[1] and all(
                math.isfinite(v) for v in (folded, *values))
                and Fraction(folded) != Fraction(values[0]) / Fraction(values[1]))
            if math.isfinite(folded) and not inexact:
                return self.tape.const(folded)
        return self._new(op, args)

    # --- readable products and quotients (jacli diff) ---------------------------------

    def _term(self, index: int, depth: int = TERM_DEPTH) -> "_Term":
        """The node as coefficient * product(num) / product(den), looking `depth` levels
        into products, quotients and negations (not further: sharing must survive)."""
        value = self._constant(index)
        if value is not None and value != 0.0 and math.isfinite(value):
            return _Term(Fraction(value), [], [])   # a 0 stays a factor: 0*inf is nan
        node = self.tape.nodes[index]
        if depth and node.op in ("neg", "mul", "div"):
            parts = [self._term(node.args[0], depth - 1)]
            parts += [self._denominator(a, depth - 1) if node.op == "div" else
                      self._term(a, depth - 1) for a in node.args[1:]]
            if node.op == "neg":
                return _Term(-parts[0].coefficient, parts[0].num, parts[0].den)
            (c1, n1, d1), (c2, n2, d2) = parts
            if node.op == "mul":
                return _Term(c1 * c2, n1 + n2, d1 + d2)
            return _Term(c1 / c2, n1 + d2, d1 + n2)
        return _Term(Fraction(1), [index], [])

    def _denominator(self, index: int, depth: int) -> "_Term":
        """A divisor as a term: a product stays one factor but its constant (2 of 2*y),
        so that the adjoints of a chain a/b/c/... share their denominators."""
        node = self.tape.nodes[index]
        if node.op != "mul":
            return self._term(index, depth)
        value = self._constant(node.args[0])
        if value is not None and value != 0.0 and math.isfinite(value):
            return _Term(Fraction(value), [node.args[1]], [])
        return _Term(Fraction(1), [index], [])

    def _readable(self, op: str, args: tuple[int, ...]) -> int | None:
        """Products, quotients and negations as written by hand, or None to leave it to
        the rules of `_simplify`: the constant first and folded (3*(2*x) -> 6*x), then
        variables, then powers of variables, then the rest (exp(u)*x -> x*exp(u)), sums
        last ((1 - t)*e -> e*(1 - t)), a
        repeated factor as a power (x*x -> x^2), one division last (a*(b/c) -> a*b/c,
        a/b/c -> a/(b*c)); a sum's negative term subtracted, and a + a -> 2*a."""
        if op == "neg" and self.tape.nodes[args[0]].op == "sub":   # -(a - b) -> b - a
            return self.apply("sub", self.tape.nodes[args[0]].args[::-1])
        terms = [self._term(a) for a in args[:1]] + [
            self._denominator(a, TERM_DEPTH) if op == "div" else self._term(a)
            for a in args[1:]]
        if op == "add" and args[0] == args[1]:   # a + a -> 2*a, exactly
            c, num, den = terms[0]
            return self._build(_Term(2 * c, num, den))
        if op == "neg":
            c, num, den = terms[0]
            return self._build(_Term(-c, num, den))
        if op in ("mul", "div"):
            (c1, n1, d1), (c2, n2, d2) = terms
            if op == "mul":
                term = _Term(c1 * c2, n1 + n2, d1 + d2)
            else:
                term = _Term(c1 / c2, n1 + d2, d1 + n2)
            # Rewritten only where it reads better: a constant to fold or move, a division
            # to do last, or a short product to order; a long product of factors (x*y*z*w)
            # is left as it is, so that shared subexpressions stay shared.
            if c1 == c2 == 1 and not term.den and len(term.num) > 3:
                return None
            return self._build(term)
        if op in ("add", "sub"):   # a + (-c)*x -> a - c*x, exactly: (-c)*x = -(c*x)
            flipped = [self._build(_Term(-c, num, den)) if c < 0 else None
                       for c, num, den in terms]
            if flipped[1] is not None:
                return self.apply("sub" if op == "add" else "add", (args[0], flipped[1]))
            if op == "add" and flipped[0] is not None:   # -a + b -> b - a
                return self.apply("sub", (args[1], flipped[0]))
        return None

    def _rank(self, index: int) -> tuple[int, int]:
        node = self.tape.nodes[index]
        if node.op == CONST:
            return (0, 0)
        if node.op == VAR:                                     # x, y, in order
            return (1, index)
        base, exponent = (self.tape.nodes[a].op for a in node.args) if node.op == "pow" else (
            None, None)
        if base == VAR and exponent == CONST:                  # x^2 beside x
            return (1, node.args[0])
        return (3, 0) if node.op in ("add", "sub") else (2, 0)   # (a - b) last

    def _build(self, term: "_Term") -> int | None:
        """The node of a term, built as printed, or None if its coefficient has no
        exact form (a double, or a ratio of integers below 2^53) or it has too many
        factors to be worth rewriting."""
        c, num, den = term
        if len(num) + len(den) > MAX_FACTORS:
            return None
        zeros = [f for f in num if self.tape.nodes[f].op == CONST
                 and self.tape.nodes[f].value == 0.0]
        if zeros:   # a 0 of the program: c*0 is a (signed) 0, written as one factor
            num = [f for f in num if f not in zeros] + [
                self.tape.const(math.copysign(0.0, c) * math.prod(
                    self.tape.nodes[z].value for z in zeros))]
            c = Fraction(1)
        top, bottom = _coefficient(abs(c), fraction=bool(den))
        if top is None:
            return None
        tape = self.tape

        def product(lead: float, factors: list[int]) -> int | None:
            counts: dict[int, int] = {}
            for f in factors:
                counts[f] = counts.get(f, 0) + 1
            ordered = sorted(counts, key=self._rank)   # stable: the order of appearance
            nodes = [tape.const(lead)] if lead != 1 else []
            for f in ordered:
                nodes.append(f if counts[f] == 1 else
                             tape.apply("pow", (f, tape.const(counts[f])), self.span))
            if not nodes:
                return None
            result = nodes[0]
            for f in nodes[1:]:
                result = tape.apply("mul", (result, f), self.span)
            return result

        negative = c < 0
        sign = -1.0 if negative and (top != 1 or not num) else 1.0   # -2*x, -1/x^2
        numerator = product(sign * top, num)
        if numerator is None:
            numerator = tape.const(sign * top)
        denominator = product(bottom, den)
        result = numerator if denominator is None else tape.apply(
            "div", (numerator, denominator), self.span)
        if negative and sign == 1.0:                         # -x*exp(u), -y/t
            node = tape.nodes[result]
            if node.op == "sub":                             # -(a - b) -> b - a
                return tape.apply("sub", node.args[::-1], self.span)
            return tape.apply("neg", (result,), self.span)
        return result

    def _unsigned(self, index: int) -> tuple[int, bool]:
        """The node under all the negations at the top of `index`, and whether their
        number is odd: all at once, as a loop (-----x*y is not 5 rewrites deep)."""
        odd = False
        while self.tape.nodes[index].op == "neg":
            index, odd = self.tape.nodes[index].args[0], not odd
        return index, odd

    def _simplify(self, op, args, values):
        """A simpler equal node (an index), an (op, args) to build instead, or None."""
        unsigned = [self._unsigned(a) for a in args] if op in ("add", "sub", "mul", "div") \
            else []
        if op in ("add", "sub") and unsigned[1][0] != args[1]:   # a + -b -> a - b
            inner, odd = unsigned[1]
            return ({"add": "sub", "sub": "add"}[op] if odd else op, (args[0], inner))
        if op == "add" and unsigned[0][0] != args[0]:             # -a + b -> b - a
            inner, odd = unsigned[0]
            return ("sub" if odd else "add", (args[1], inner))
        if op in ("mul", "div") and any(u != a for (u, _), a in zip(unsigned, args)):
            inner = (unsigned[0][0], unsigned[1][0])
            if unsigned[0][1] != unsigned[1][1]:
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
    nodes, shapes = tape.nodes, tape.shapes   # shapes: grown as nodes are appended
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
        prim = PRIMITIVES[node.op]
        if prim.vjp is not None:   # an array primitive: its cotangent rule, per argument
            terms = [prim.vjp[p](ops, adjoint, index, list(node.args), node.params)
                     for p in positions]
        else:
            partials = prim.partials_at(ops, index, list(node.args), positions)
            ops.origin = (index, True)
            terms = [None if partial is None else times(adjoint, partial)
                     for partial in partials]
        for position, term in zip(positions, terms):
            if term is None:   # a rule's symbolic zero
                continue
            arg = node.args[position]
            if shapes is not None and shapes[term] != shapes[arg]:   # unbroadcast
                term = ops.sum_to(term, shapes[arg])
            received.setdefault(arg, []).append((index, term))
    ops.origin = None
    zero = tape.const(0.0)
    gradient = []
    for name in wrt:
        variable = tape.variable_nodes.get(name)
        if variable in adjoints:
            gradient.append(adjoints[variable])
        elif shapes is not None and tape.variable_shapes.get(name, ()) != ():
            gradient.append(ops.apply("broadcast_to", (zero,), (tape.variable_shapes[name],)))
        else:
            gradient.append(zero)
    return gradient


def jacobian_nodes(tape: Tape, root: int, wrt: list[str], ops: SimplifyingOps) -> list[int]:
    """Nodes computing d root / d wrt_j in array form, of shape root's + wrt_j's (as
    jax.jacobian): the gradient for a scalar root; else one reverse sweep per component
    of root, seeded by indexing it, and the rows stacked as a literal."""
    shape = tape.shapes[root] if tape.shapes is not None else ()
    if shape == ():
        return gradient_nodes(tape, root, wrt, ops)
    rows = [gradient_nodes(tape, ops.index(root, tuple(int(k) for k in component)), wrt, ops)
            for component in np.ndindex(*shape)]
    jacobian = []
    for j in range(len(wrt)):
        level = [row[j] for row in rows]
        for size in reversed(shape):   # the last axis first: rows, then rows of rows
            level = [ops.stack(*level[k:k + size]) for k in range(0, len(level), size)]
        jacobian.append(level[0])
    return jacobian


def gradient_tape(tape: Tape, root: int, wrt: list[str]
                  ) -> tuple[Tape, list[int], dict[int, tuple[int, bool]]]:
    """A copy of `tape` extended with nodes computing d root / d wrt: differentiating
    these once more, numerically, gives the Hessian (reverse over reverse, exact).
    Also which entry each new node comes from (for warnings: engine.WarningLog.origins)."""
    extended = tape.copy()
    ops = SimplifyingOps(extended)
    return extended, gradient_nodes(extended, root, wrt, ops), ops.origins

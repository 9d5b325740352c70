"""Tape nodes printed back as a program: jacli text, LaTeX or JSON (`jacli diff`).

Nodes are written in tape order, so no recursion: each node's text is built from
its arguments' texts, with the fewest parentheses the grammar needs. A node becomes
a `let` when it is used more than once (common subexpressions), when the user named
it with `let` or as an output in the source, or when its text nests too deep to read;
so the printed program grows linearly with the tape, never exponentially.
Array primitives print as the language writes them (`A @ x`, `x[1:]`, `sum(a, axis=0)`,
`[a, b]`); the internal ones that move or sum entries (broadcast_to, reshape, a scatter
into zeros, ...) as a literal of their entries, unless a call says it (`transpose`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from .api import Program
from .errors import JacliError
from .prims import PRIMITIVES
from .shapes import infer_shapes
from .symbolic import SimplifyingOps, jacobian_nodes
from .tape import CONST, VAR, Tape

SUM, PRODUCT, UNARY, POWER, ATOM = range(1, 6)
#: Nesting depth past which a subexpression gets a name of its own.
MAX_DEPTH = 12
#: A subexpression used more than once is written out again, not named, if its jacli
#: text is this short (exp(x), x - y, x^2).
SHORT = 8

_BINARY = {"add": ("+", SUM), "sub": ("-", SUM), "mul": ("*", PRODUCT), "div": ("/", PRODUCT)}


@dataclass
class Derivatives:
    """Derivative nodes on an extended tape, and what each one is."""
    tape: Tape
    entries: list[tuple[str, str, tuple[str, ...], int]]   # (name, output, wrt..., node)
    inputs: list[str]
    names: dict[int, str]                                   # source names to keep


def derivatives(program: Program, outputs: list[str], wrt: list[str],
                order: int = 1, shapes: dict[str, tuple] | None = None) -> Derivatives:
    """d out / d x (order 1) or d2 out / dx dy for x <= y in `wrt` order (order 2).

    With `shapes` (a program of arrays, or variables given shapes: those not named are
    scalars), each derivative is an array, of the shape jax.jacobian gives: the output's
    shape, then each input's (see symbolic.jacobian_nodes)."""
    tape = program.tape.copy()
    if shapes is not None:
        tape.set_shapes(shapes, infer_shapes(tape, shapes))
    ops = SimplifyingOps(tape, readable=True)
    taken = set(program.variables) | set(tape.names)
    entries = []
    for out in outputs:
        root = tape.output_node(out)
        gradient = jacobian_nodes(tape, root, wrt, ops)
        for i, first in enumerate(wrt):
            if order == 1:
                entries.append((_fresh(f"d_{out}_d_{first}", taken), out, (first,), gradient[i]))
                continue
            second = jacobian_nodes(tape, gradient[i], wrt[i:], ops)
            for j, other in enumerate(wrt[i:]):
                name = _fresh(f"d2_{out}_d_{first}_d_{other}", taken)
                entries.append((name, out, (first, other), second[j]))
    names = {index: name for name, index in program.tape.names.items()}
    return Derivatives(tape, entries, list(wrt), names)


def _fresh(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def _number(value: float, latex: bool = False) -> tuple[str, int]:
    if value == math.pi:
        return ("\\pi" if latex else "pi"), ATOM
    if value == math.e:
        return "e", ATOM
    if math.isinf(value):
        text = "\\infty" if latex else "1e999"      # 1e999 reads back as inf
    elif value.is_integer() and abs(value) < 1e16:
        text = str(int(abs(value)))
    else:
        text = repr(abs(value))
        if latex and "e" in text:
            mantissa, exponent = text.split("e")
            text = f"{mantissa} \\times 10^{{{int(exponent)}}}"
    return ("-" + text, UNARY) if value < 0 or math.copysign(1, value) < 0 else (text, ATOM)


def _wrap(text: str, level: int, needed: int, latex: bool = False) -> str:
    if level >= needed:
        return text
    return f"\\left({text}\\right)" if latex else f"({text})"


def _jacli_text(op: str, args: list[tuple[str, int]]) -> tuple[str, int]:
    if op in _BINARY:
        symbol, level = _BINARY[op]
        (left, left_level), (right, right_level) = args
        space = " " if level == SUM else ""
        return (f"{_wrap(left, left_level, level)}{space}{symbol}{space}"
                f"{_wrap(right, right_level, level + 1)}", level)
    if op == "neg":   # -(x*y) as -x*y: (-x)*y is the same double, and -(x/y) likewise
        text, level = args[0]
        if level == PRODUCT and not text.startswith("-"):
            return "-" + text, PRODUCT
        return "-" + _wrap(text, level, UNARY), UNARY
    if op == "pow":   # the base is an atom, the exponent may carry a sign
        return f"{_wrap(args[0][0], args[0][1], ATOM)}^{_wrap(args[1][0], args[1][1], UNARY)}", POWER
    if op == "equal":  # internal (derivatives of min/max): 1 where a = b, else 0
        (a, a_level), (b, b_level) = args
        return f"1 - abs(sign({_wrap(a, a_level, SUM)} - {_wrap(b, b_level, PRODUCT)}))", SUM
    if op == "is_zero":  # internal (pow's guards): 1 where a = 0, else 0
        return f"1 - abs(sign({args[0][0]}))", SUM
    if op == "both_zero":  # internal (pow's guards): 1 where a = 0 and b = 0, else 0
        return f"(1 - abs(sign({args[0][0]})))*(1 - abs(sign({args[1][0]})))", PRODUCT
    if op == "one_minus_square":  # internal (asin', acos', atanh'): 1 - x^2, exactly so
        x = _wrap(args[0][0], args[0][1], PRODUCT)
        return f"(1 - {x})*(1 + {x})", PRODUCT
    if op == "hypot_ratio":  # internal (hypot's partials): x/h, h = hypot(x, y)
        (x, x_level), _, (h, h_level) = args
        return f"{_wrap(x, x_level, PRODUCT)}/{_wrap(h, h_level, PRODUCT + 1)}", PRODUCT
    if op == "mul_diff":  # internal (softmax's rule): a*(b - c)
        (a, a_level), (b, _), (c, c_level) = args
        return f"{_wrap(a, a_level, PRODUCT)}*({b} - {_wrap(c, c_level, PRODUCT)})", PRODUCT
    return f"{op}({', '.join(text for text, _ in args)})", ATOM


_REDUCTIONS = {"sum": "sum", "mean": "mean", "prod": "prod", "norm": "norm",
               "logsumexp": "logsumexp", "amax": "max", "amin": "min"}
#: Internal ops of the array rules that move, copy or sum entries: written as literals.
_MOVES = ("broadcast_to", "sum_to", "reshape", "swap", "index_scatter", "prod_others",
          "prod_others_vjp")


def _spec_text(spec: tuple) -> str:
    """An index spec (ints and (start, stop, step) triples) as written: `1, ::-1`."""
    parts = []
    for item in spec:
        if type(item) is int:
            parts.append(str(item))
            continue
        start, stop, step = ("" if v is None else str(v) for v in item)
        parts.append(f"{start}:{stop}" + (f":{step}" if step else ""))
    return ", ".join(parts)


def _literal(shape: tuple, entries: list[str]) -> str:
    """A nested literal of `shape` from its entries' texts, row-major (a loop: ranks and
    sizes are the user's)."""
    level = list(entries)
    for size in reversed(shape):
        level = ["[" + ", ".join(level[k:k + size]) + "]" for k in range(0, len(level), size)]
    return level[0]


def _entry(base: str, level: int, shape: tuple, flat: int) -> str:
    """The text of entry `flat` (row-major) of a value of `shape` written `base`."""
    if not shape:
        return base
    index = ", ".join(str(int(k)) for k in np.unravel_index(flat, shape))
    return f"{_wrap(base, level, ATOM)}[{index}]"


def _array_text(node, args: list[tuple[str, int]], shapes: list[tuple],
                result: tuple) -> tuple[str, int]:
    """jacli text of an array primitive; the internal ones that move, copy or sum entries
    as a literal of the result's entries, unless a call says it (transpose, sum)."""
    op, params = node.op, node.params
    if op == "stack":
        return "[" + ", ".join(text for text, _ in args) + "]", ATOM
    if op == "index":
        return f"{_wrap(args[0][0], args[0][1], ATOM)}[{_spec_text(params[0])}]", ATOM
    if op == "matmul":
        (left, left_level), (right, right_level) = args
        return (f"{_wrap(left, left_level, PRODUCT)} @ {_wrap(right, right_level, PRODUCT + 1)}",
                PRODUCT)
    if op in _REDUCTIONS or op == "softmax":
        axis = params[0]
        default = -1 if op == "softmax" else None
        keyword = "" if axis == default else f", axis={axis}"
        return f"{_REDUCTIONS.get(op, op)}({args[0][0]}{keyword})", ATOM
    if op == "adjugate" and len(shapes[0]) == 2:   # internal (det's derivative)
        text = args[0][0]
        return f"det({text})*inv({text})", PRODUCT
    if op == "adjugate":
        raise JacliError("diff cannot write the derivative of det(...) of a stack of "
                         "matrices as a program yet", origin="program")
    if op not in _MOVES:
        return f"{op}({', '.join(text for text, _ in args)})", ATOM
    (text, level), shape = args[0], shapes[0]
    ids = np.arange(math.prod(shape), dtype=np.int64).reshape(shape)
    if op == "swap" and len(shape) == 2:
        return f"transpose({text})", ATOM
    if op == "broadcast_to" and shape == result[len(result) - len(shape):]:   # copies
        return _literal(result[:len(result) - len(shape)], [text] * math.prod(
            result[:len(result) - len(shape)])), ATOM
    if op == "sum_to" and result == ():
        return f"sum({text})", ATOM
    if op == "sum_to":   # each entry the sum of the entries broadcast from it
        sources = np.broadcast_to(
            np.arange(math.prod(result)).reshape(result), shape).reshape(-1)
        terms: list[list[int]] = [[] for _ in range(math.prod(result))]
        for k, target in enumerate(sources):
            terms[target].append(k)
        return _literal(result, [" + ".join(_entry(text, level, shape, k) for k in t)
                                 for t in terms]), ATOM
    spec = params[0] if op == "index_scatter" else ()
    if spec and all(type(k) is int for k in spec):   # the argument at one place, zeros
        lead, rest = result[:len(spec)], result[len(spec):]
        zeros = _literal(rest, ["0"] * math.prod(rest))
        place = np.ravel_multi_index(tuple(k % n for k, n in zip(spec, lead)), lead)
        return _literal(lead, [text if k == place else zeros
                               for k in range(math.prod(lead))]), ATOM
    if op == "prod_others":
        return _prod_others_text(text, level, shape, params[0]), ATOM
    if op == "prod_others_vjp":
        raise JacliError("diff cannot write the second derivative of prod(...) of an array "
                         "as a program yet", origin="--order")
    if op == "broadcast_to":
        source = np.broadcast_to(ids.reshape((1,) * (len(result) - len(shape)) + shape), result)
    elif op == "reshape":
        source = ids.reshape(result)
    elif op == "swap":
        source = np.swapaxes(ids, -1, -2)
    else:   # index_scatter: zeros but where the spec puts the argument
        source = np.full(result, -1, dtype=np.int64)
        source[tuple(slice(*item) if isinstance(item, tuple) else item
                     for item in params[0])] = ids
    return _literal(result, ["0" if k < 0 else _entry(text, level, shape, k)
                             for k in source.reshape(-1)]), ATOM


def _prod_others_text(text: str, level: int, shape: tuple, axis) -> str:
    """prod_others(x): each entry the product of the other entries (all of them, or
    along `axis`)."""
    ids = np.arange(math.prod(shape), dtype=np.int64).reshape(shape)
    if axis is None or not shape:
        groups = [ids.reshape(-1)]
    else:
        groups = list(np.moveaxis(ids, axis, -1).reshape(-1, shape[axis]))
    entries = [""] * math.prod(shape)
    for group in groups:
        for k in group:
            others = [_entry(text, level, shape, j) for j in group if j != k]
            entries[k] = "*".join(others) or "1"
    return _literal(shape, entries) if shape else entries[0]


_LATEX_FUNCTIONS = {"asin": "\\arcsin", "acos": "\\arccos", "atan": "\\arctan", "log": "\\ln"}


def _latex_text(op: str, args: list[tuple[str, int]]) -> tuple[str, int]:
    if op == "div":
        return f"\\frac{{{args[0][0]}}}{{{args[1][0]}}}", ATOM
    if op == "mul":
        (left, left_level), (right, right_level) = args
        return (f"{_wrap(left, left_level, PRODUCT, True)} \\cdot "
                f"{_wrap(right, right_level, UNARY, True)}", PRODUCT)
    if op in ("add", "sub"):
        (left, left_level), (right, right_level) = args
        sign = "+" if op == "add" else "-"
        return f"{left} {sign} {_wrap(right, right_level, PRODUCT, True)}", SUM
    if op == "neg":
        text, level = args[0]
        if level == PRODUCT and not text.startswith("-"):
            return "-" + text, PRODUCT
        return "-" + _wrap(text, level, UNARY, True), UNARY
    if op == "pow":
        return f"{{{_wrap(args[0][0], args[0][1], ATOM, True)}}}^{{{args[1][0]}}}", POWER
    if op == "sqrt":
        return f"\\sqrt{{{args[0][0]}}}", ATOM
    if op == "cbrt":
        return f"\\sqrt[3]{{{args[0][0]}}}", ATOM
    if op == "abs":
        return f"\\left|{args[0][0]}\\right|", ATOM
    if op == "equal":
        return f"[{args[0][0]} = {args[1][0]}]", ATOM
    if op == "is_zero":
        return f"[{args[0][0]} = 0]", ATOM
    if op == "both_zero":
        return f"[{args[0][0]} = 0][{args[1][0]} = 0]", ATOM
    if op == "one_minus_square":
        x = _wrap(args[0][0], args[0][1], PRODUCT, True)
        return f"(1 - {x})(1 + {x})", PRODUCT
    if op == "hypot_ratio":
        return f"\\frac{{{args[0][0]}}}{{{args[2][0]}}}", ATOM
    if op == "mul_diff":
        a = _wrap(args[0][0], args[0][1], PRODUCT, True)
        c = _wrap(args[2][0], args[2][1], PRODUCT, True)
        return f"{a} \\cdot ({args[1][0]} - {c})", PRODUCT
    if op in ("sin", "cos", "tan", "sinh", "cosh", "tanh", "exp", "log", "asin", "acos", "atan"):
        name = _LATEX_FUNCTIONS.get(op, "\\" + op)
        return f"{name}\\left({args[0][0]}\\right)", ATOM
    joined = ", ".join(text for text, _ in args)
    return f"\\operatorname{{{op}}}\\left({joined}\\right)", ATOM


@dataclass
class Statement:
    kind: str          # "let" or "output"
    name: str
    text: str
    entry: tuple | None = None


def statements(d: Derivatives, latex: bool = False) -> list[Statement]:
    """Lets and outputs, in an order where every name is defined before it is used.
    The same nodes become lets in both forms: the choice is made on the jacli text."""
    nodes, shapes = d.tape.nodes, d.tape.shapes
    roots = [node for *_, node in d.entries]
    needed = d.tape.dependencies(roots)
    uses = [0] * len(nodes)
    for index, node in enumerate(nodes):
        if needed[index]:
            for arg in node.args:   # a literal of entries names its argument's text again
                uses[arg] += 2 if node.op in _MOVES else 1
    for root in roots:
        uses[root] += 1
    taken = {name for name, *_ in d.entries} | set(d.names.values()) | {
        n.name for n in nodes if n.op == VAR}
    counter = 0
    plain: dict[int, tuple[str, int]] = {}
    typeset: dict[int, tuple[str, int]] = {}      # LaTeX
    fractions: dict[int, tuple] = {}              # LaTeX: (numerator, denominator)
    depth: dict[int, int] = {}
    out: list[Statement] = []
    for index, node in enumerate(nodes):
        if not needed[index]:
            continue
        if node.op == VAR:
            plain[index], depth[index] = (node.name, ATOM), 0
            typeset[index] = (_latex_name(node.name), ATOM)
            continue
        if node.op == CONST:
            plain[index], depth[index] = _number(node.value), 0
            typeset[index] = _number(node.value, True)
            continue
        if shapes is not None and (node.params or PRIMITIVES[node.op].shape is not None):
            plain[index] = _array_text(node, [plain[a] for a in node.args],
                                       [shapes[a] for a in node.args], shapes[index])
        else:
            plain[index] = _jacli_text(node.op, [plain[a] for a in node.args])
        depth[index] = 1 + max(depth[a] for a in node.args)
        if latex and node.op == "div":
            top, bottom = _latex_fraction(*[fractions.get(a, (typeset[a], None))
                                            for a in node.args])
            fractions[index] = (top, bottom)
            if top[0].startswith("-") and top[1] in (UNARY, PRODUCT):   # -\frac{1}{x^2}
                typeset[index] = (f"-\\frac{{{top[0][1:]}}}{{{bottom[0]}}}", UNARY)
            else:
                typeset[index] = (f"\\frac{{{top[0]}}}{{{bottom[0]}}}", ATOM)
        elif latex:
            typeset[index] = _latex_text(node.op, [typeset[a] for a in node.args])
        # A short text used again (exp(x), x - y) reads better than a name for it.
        short = len(plain[index][0]) <= SHORT or (
            node.op == "neg" and nodes[node.args[0]].op in (VAR, CONST))
        if index in d.names or (uses[index] > 1 and not short) or depth[index] > MAX_DEPTH:
            name = d.names.get(index)
            if name is None:
                counter += 1
                while f"t{counter}" in taken:
                    counter += 1
                name = f"t{counter}"
            out.append(Statement("let", name, (typeset if latex else plain)[index][0]))
            plain[index], depth[index] = (name, ATOM), 0
            typeset[index] = (_latex_name(name), ATOM)
            fractions.pop(index, None)
    texts = typeset if latex else plain
    for entry in d.entries:
        out.append(Statement("output", entry[0], texts[entry[3]][0], entry))
    return out


def _latex_fraction(top, bottom) -> tuple:
    """Numerator and denominator of top/bottom with no fraction inside the fraction:
    (a/b)/c is a/(b c) and a/(b/c) is (a c)/b. `top` and `bottom` are (numerator,
    denominator) pairs of (text, level), the denominator None for a plain expression."""
    (a, b), (c, d) = top, bottom
    numerator = a if d is None else _latex_text("mul", [a, d])
    denominator = c if b is None else _latex_text("mul", [b, c])
    return numerator, denominator


#: Names written as Greek letters in LaTeX (the capitals that LaTeX has).
GREEK = set("""alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi rho
    sigma tau upsilon phi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi
    Psi Omega""".split())


def _latex_name(name: str) -> str:
    head, _, tail = name.partition("_")
    if head in GREEK:
        head = "\\" + head
    if tail in GREEK:
        tail = "\\" + tail
    return f"{head}_{{{tail}}}" if tail else head


def to_jacli(d: Derivatives) -> str:
    lines = []
    for statement in statements(d):
        prefix = "let " if statement.kind == "let" else ""
        lines.append(f"{prefix}{statement.name} = {statement.text}")
    return "\n".join(lines) + "\n"


def _arrays(d: Derivatives) -> bool:
    return d.tape.shapes is not None and any(d.tape.shapes[node] for *_, node in d.entries)


def to_latex(d: Derivatives) -> str:
    if _arrays(d):
        raise JacliError("diff --format latex writes scalar derivatives only; an array "
                         "derivative is written by --format jacli or json", origin="--format")
    lines = []
    for statement in statements(d, latex=True):
        if statement.kind == "let":
            lines.append(f"{_latex_name(statement.name)} &= {statement.text}")
            continue
        _, out, wrt, _ = statement.entry
        out_name = _latex_name(out)
        if len(wrt) == 1:
            head = f"\\frac{{\\partial {out_name}}}{{\\partial {_latex_name(wrt[0])}}}"
        elif wrt[0] == wrt[1]:
            head = f"\\frac{{\\partial^2 {out_name}}}{{\\partial {_latex_name(wrt[0])}^2}}"
        else:
            head = (f"\\frac{{\\partial^2 {out_name}}}{{\\partial {_latex_name(wrt[0])} "
                    f"\\partial {_latex_name(wrt[1])}}}")
        lines.append(f"{head} &= {statement.text}")
    return "\\begin{align*}\n" + " \\\\\n".join(lines) + "\n\\end{align*}\n"


def to_json(d: Derivatives) -> str:
    lets, derivatives_ = [], []
    for statement in statements(d):
        if statement.kind == "let":
            lets.append({"name": statement.name, "expr": statement.text})
        else:
            name, out, wrt, _ = statement.entry
            derivatives_.append({"name": name, "output": out, "wrt": list(wrt),
                                 "expr": statement.text})
            if _arrays(d):   # each derivative's shape: the output's, then the inputs'
                derivatives_[-1]["shape"] = list(d.tape.shapes[statement.entry[3]])
    document = {"inputs": d.inputs, "lets": lets, "derivatives": derivatives_}
    if _arrays(d):
        document["shapes"] = {name: list(d.tape.variable_shapes.get(name, ()))
                              for name in d.inputs}
    return json.dumps(document) + "\n"

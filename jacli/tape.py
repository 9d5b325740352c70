"""The tape (a Wengert list): primitive nodes in topological order.

A node's arguments are indices of earlier nodes, so a forward pass is a loop
forward and a reverse sweep a loop backward: no recursion at any depth.
Identical nodes are shared (hash-consing); a repeated argument such as `x*x`
keeps both references, so both contributions reach `x`.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import NamedTuple

from .prims import PRIMITIVES
from .shapes import node_shape

VAR = "var"
CONST = "const"


class Node(NamedTuple):
    op: str                          # a primitive name, VAR or CONST
    args: tuple[int, ...] = ()
    span: tuple[int, int] | None = None
    name: str | None = None          # the variable's name, for VAR
    value: float | None = None       # the number, for CONST
    params: tuple = ()               # an op's static parameters (an index, an axis, ...)


class Tape:
    def __init__(self, source: str = ""):
        self.source = source
        self.nodes: list[Node] = []
        self.variables: list[str] = []           # free variables, in order of first appearance
        self.variable_nodes: dict[str, int] = {}
        self.outputs: list[str] = []
        self.output_nodes: list[int] = []
        self.output_spans: list[tuple[int, int]] = []
        self.names: dict[str, int] = {}          # let and output names -> node
        self._index: dict[tuple, int] = {}       # hash-consing: (op, args) -> node
        self._masks: dict = {}                   # dependencies(), remembered
        # Static shapes per node, once a shape pass has run (`set_shapes`); from then on
        # every node appended (derivative rules) gets its shape from its rule.
        self.shapes: list[tuple] | None = None
        self.variable_shapes: dict[str, tuple] = {}

    def __repr__(self) -> str:
        return f"Tape({len(self.nodes)} nodes, outputs {self.outputs})"

    def __len__(self) -> int:
        return len(self.nodes)

    def _intern(self, key: tuple, node: Node) -> int:
        index = self._index.get(key)
        if index is None:
            if self.shapes is not None:
                self.shapes.append(self.node_shape(node))
            index = self._index[key] = len(self.nodes)
            self.nodes.append(node)
        return index

    def node_shape(self, node: Node) -> tuple:
        """A node's static shape from its arguments' (raises errors.ShapeError)."""
        if node.op == CONST:
            return ()
        if node.op == VAR:
            return tuple(self.variable_shapes.get(node.name, ()))
        return node_shape(node.op, [self.shapes[a] for a in node.args], node.params)

    def set_shapes(self, variable_shapes: dict[str, tuple], shapes: list[tuple]) -> None:
        self.variable_shapes, self.shapes = dict(variable_shapes), list(shapes)

    def var(self, name: str, span=None) -> int:
        index = self.variable_nodes.get(name)
        if index is None:
            index = self._intern((VAR, name), Node(VAR, (), span, name=name))
            self.variable_nodes[name] = index
            self.variables.append(name)
        return index

    def const(self, value: float, span=None) -> int:
        value = float(value)
        return self._intern((CONST, value.hex()), Node(CONST, (), span, value=value))

    def apply(self, op: str, args: tuple[int, ...], span=None, params: tuple = ()) -> int:
        key = (op, args, params) if params else (op, args)
        return self._intern(key, Node(op, tuple(args), span, params=params))

    def add_output(self, name: str, index: int, span) -> None:
        self.outputs.append(name)
        self.output_nodes.append(index)
        self.output_spans.append(span)

    def copy(self) -> "Tape":
        """An independent tape with the same nodes, to be extended (derivative nodes)."""
        tape = Tape(self.source)
        tape.nodes, tape.variables = list(self.nodes), list(self.variables)
        tape.variable_nodes, tape.names = dict(self.variable_nodes), dict(self.names)
        tape.outputs, tape.output_nodes = list(self.outputs), list(self.output_nodes)
        tape.output_spans, tape._index = list(self.output_spans), dict(self._index)
        if self.shapes is not None:
            tape.set_shapes(self.variable_shapes, self.shapes)
        return tape

    def output_node(self, name: str) -> int:
        return self.output_nodes[self.outputs.index(name)]

    def labels(self) -> dict[int, list[str]]:
        """The names each node carries: its `let` or output names, and f1, f2, ... for
        unnamed outputs."""
        labels: dict[int, list[str]] = {}
        for name, index in self.names.items():
            labels.setdefault(index, []).append(name)
        for name, index in zip(self.outputs, self.output_nodes):
            if name not in labels.get(index, []):
                labels.setdefault(index, []).append(name)
        return labels

    def text(self, index: int) -> str:
        """The source text a node came from (empty for nodes made by rules)."""
        span = self.nodes[index].span
        return self.source[span[0]:span[1]] if span else ""

    def dependencies(self, roots: list[int]) -> list[bool]:
        """For each node: is it an argument, transitively, of one of `roots`?
        (Remembered: a batch asks the same question for every chunk of points.)"""
        return self._remembered(("roots", tuple(roots)), self._dependencies, roots)

    def _dependencies(self, roots: list[int]) -> list[bool]:
        needed = [False] * len(self.nodes)
        for root in roots:
            needed[root] = True
        for index in range(len(self.nodes) - 1, -1, -1):
            if needed[index]:
                for arg in self.nodes[index].args:
                    needed[arg] = True
        return needed

    def depends_on(self, variables: list[str]) -> list[bool]:
        """For each node: does its value depend on one of `variables`? (Remembered.)"""
        return self._remembered(("variables", tuple(variables)), self._depends_on, variables)

    def _remembered(self, key: tuple, compute, argument) -> list[bool]:
        if self._masks.get("length") != len(self.nodes):   # the tape grew: start afresh
            self._masks = {"length": len(self.nodes)}
        if key not in self._masks:
            self._masks[key] = compute(argument)
        return self._masks[key]

    def _depends_on(self, variables: list[str]) -> list[bool]:
        depends = [False] * len(self.nodes)
        for name in variables:
            if name in self.variable_nodes:
                depends[self.variable_nodes[name]] = True
        for index, node in enumerate(self.nodes):
            if node.args and any(depends[a] for a in node.args):
                depends[index] = True
        return depends


@contextmanager
def paused_gc():
    """Hold the garbage collector's full passes while a tape (and its per-node values)
    grows: scanning it over and over would make long programs quadratic."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


class NodeOps:
    """An ops namespace (see prims.py) that builds tape nodes instead of numbers:
    `NodeOps(tape).cos(i)` appends `cos(node i)` and returns its index."""

    def __init__(self, tape: Tape, span: tuple[int, int] | None = None):
        self.tape = tape
        self.span = span   # the source span new nodes are attributed to (for warnings)

    def const(self, value: float) -> int:
        return self.tape.const(value)

    def shape(self, index: int) -> tuple:
        """A node's static shape (the tape's shapes; () before any shape pass)."""
        return self.tape.shapes[index] if self.tape.shapes is not None else ()

    def __getattr__(self, op: str):
        if op not in PRIMITIVES:
            raise AttributeError(op)
        arity = PRIMITIVES[op].arity
        # called as the numeric ops are, m.op(*args, *params): split by the arity
        return lambda *a: self.apply(op, *split_params(arity, a))

    def apply(self, op: str, args: tuple, params: tuple = ()) -> int:
        return self.tape.apply(op, tuple(args), self.span, params)


def split_params(arity: int, given: tuple) -> tuple[tuple, tuple]:
    """(arguments, params) of an ops-namespace call m.op(*args, *params)."""
    if arity < 0:
        return tuple(given), ()
    return tuple(given[:arity]), tuple(given[arity:])

"""The computational graph of a program, as Graphviz DOT or a Mermaid flowchart.

Only the tape entries the selected outputs need are drawn. A node's id is its tape
index (`v0`, `v1`, ... as in the tape view), so the same program always gives the same
text. Edges go from an argument to its user, in argument order; a node with two or more
arguments labels its edges with the argument position, so `x*x` shows two edges, 0 and 1.
Every loop here is over the tape list: no recursion, whatever the depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .api import Program
from .prims import PRIMITIVES
from .tape import CONST, VAR

INPUT = "input"
CONSTANT = "const"
OP = "op"


def node_id(index: int) -> str:
    """The id of tape entry `index`, the same as the tape view's entry name."""
    return f"v{index}"


@dataclass(frozen=True)
class _GraphNode:
    index: int
    kind: str               # INPUT, CONSTANT or OP
    lines: tuple[str, ...]  # the label, one item per line
    output: bool            # one of the selected outputs


@dataclass(frozen=True)
class _GraphEdge:
    source: int
    target: int
    position: int | None    # the argument position, None for a one-argument op


def _op_label(op: str) -> str:
    primitive = PRIMITIVES.get(op)
    if primitive is not None and primitive.symbol:
        return primitive.symbol
    return op


def shape_label(shape: tuple) -> str:
    """A static shape in jaxpr style: f64[] for a scalar, f64[3], f64[2,3]."""
    return "f64[" + ",".join(str(d) for d in shape) + "]"


def _graph(program: Program, outputs: Sequence[str] | None,
           values: Sequence[float | None] | None,
           shapes: Sequence[tuple] | None = None) -> tuple[list[_GraphNode], list[_GraphEdge]]:
    tape = program.tape
    selected = program.select_outputs(list(outputs) if outputs else None)
    roots = [tape.output_node(o) for o in selected]
    if values is not None and len(values) != len(tape.nodes):
        raise ValueError(f"values has {len(values)} entries; the tape has {len(tape.nodes)}")
    needed = tape.dependencies(roots)
    names = tape.labels()
    is_output = set(roots)
    nodes, edges = [], []
    for index, node in enumerate(tape.nodes):
        if not needed[index]:
            continue
        if node.op == VAR:
            kind, head = INPUT, node.name
        elif node.op == CONST:
            kind, head = CONSTANT, repr(node.value)
        else:
            kind, head = OP, _op_label(node.op)
        # A variable that is itself an output (`z = x`) carries that name too.
        lines = [head] + [f"({n})" for n in names.get(index, []) if n != head]
        if shapes is not None:
            lines.append(shape_label(shapes[index]))
        if values is not None and values[index] is not None:
            lines.append("= " + format(float(values[index]), ".6g"))
        nodes.append(_GraphNode(index, kind, tuple(lines), index in is_output))
        many = len(node.args) > 1
        for position, arg in enumerate(node.args):
            edges.append(_GraphEdge(arg, index, position if many else None))
    return nodes, edges


# --- Graphviz DOT -------------------------------------------------------------------------

def _dot_string(text: str) -> str:
    """A DOT quoted string; a newline becomes the centred line break `\\n`."""
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    text = text.replace("\r", "").replace("\n", "\\n")
    return f'"{text}"'


_DOT_STYLE = {
    INPUT: 'shape=ellipse, style=filled, fillcolor="#dbeafe"',
    CONSTANT: 'shape=box, style="rounded,filled", fillcolor="#f3f4f6"',
    OP: "shape=box",
}


def to_dot(program: Program, outputs: Sequence[str] | None = None,
           values: Sequence[float | None] | None = None,
           shapes: Sequence[tuple] | None = None) -> str:
    """The graph of `outputs` (default: all) as a Graphviz `digraph`.

    `values`, one per tape entry (`Program.trace(point).values`), adds `= value` to
    each label; `shapes`, one per tape entry (the shape pass's), adds its shape (f64[3]).
    Outputs are drawn bold with a double border.
    """
    nodes, edges = _graph(program, outputs, values, shapes)
    out = ["digraph jacli {",
           "  rankdir=BT;",
           '  node [fontname="Helvetica"];',
           '  edge [fontname="Helvetica", fontsize=10];']
    for node in nodes:
        attrs = f"label={_dot_string(chr(10).join(node.lines))}, {_DOT_STYLE[node.kind]}"
        if node.output:
            attrs += ", peripheries=2, penwidth=2"
        out.append(f"  {node_id(node.index)} [{attrs}];")
    for edge in edges:
        line = f"  {node_id(edge.source)} -> {node_id(edge.target)}"
        if edge.position is not None:
            line += f' [label="{edge.position}"]'
        out.append(line + ";")
    out.append("}")
    return "\n".join(out) + "\n"


# --- Mermaid ------------------------------------------------------------------------------

def _mermaid_text(text: str) -> str:
    """Text for inside a quoted Mermaid label: entity codes for what Mermaid would read."""
    text = text.replace("#", "#35;")  # first: the entity codes below start with '#'
    for char, code in (('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("&", "#amp;")):
        text = text.replace(char, code)
    return text


_MERMAID_SHAPE = {INPUT: ('(["', '"])'), CONSTANT: ('("', '")'), OP: ('["', '"]')}


def to_mermaid(program: Program, outputs: Sequence[str] | None = None,
               values: Sequence[float | None] | None = None,
               shapes: Sequence[tuple] | None = None) -> str:
    """The graph of `outputs` (default: all) as a Mermaid `flowchart`, for Markdown.

    Inputs are stadiums, constants rounded boxes, operations boxes; the classes
    `input`, `constant` and `output` style them (outputs with a thick border). `values`
    and `shapes` as for to_dot.
    """
    nodes, edges = _graph(program, outputs, values, shapes)
    out = ["flowchart BT"]
    for node in nodes:
        opening, closing = _MERMAID_SHAPE[node.kind]
        label = "<br>".join(_mermaid_text(line) for line in node.lines)
        out.append(f"  {node_id(node.index)}{opening}{label}{closing}")
    for edge in edges:
        arrow = "-->" if edge.position is None else f"-->|{edge.position}|"
        out.append(f"  {node_id(edge.source)} {arrow} {node_id(edge.target)}")
    out += ["  classDef input fill:#dbeafe,stroke:#1d4ed8",
            "  classDef constant fill:#f3f4f6,stroke:#9ca3af",
            "  classDef output stroke-width:3px"]
    for kind, members in (("input", [n for n in nodes if n.kind == INPUT]),
                          ("constant", [n for n in nodes if n.kind == CONSTANT]),
                          ("output", [n for n in nodes if n.output])):
        if members:
            out.append(f"  class {','.join(node_id(n.index) for n in members)} {kind}")
    return "\n".join(out) + "\n"

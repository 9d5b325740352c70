"""The computational graph export (jacli.graph): DOT and Mermaid text that is
deterministic, syntactically valid, complete (every argument an edge, in order) and
safe at any depth."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import jacli
from jacli.graph import to_dot, to_mermaid

REPO = Path(__file__).resolve().parents[1]
POLAR = "let rr = x^2 + y^2\nr = sqrt(rr)\ntheta = atan2(y, x)\nx*x + 1e-300"


# --- a small strict DOT checker -----------------------------------------------------------

_DOT_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>//[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\[^\n])*")
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>-?(?:\d+(?:\.\d*)?|\.\d+))
  | (?P<arrow>->)
  | (?P<punct>[{}\[\];,=])
""", re.VERBOSE)


class DotError(ValueError):
    pass


def dot_tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _DOT_TOKEN.match(text, pos)
        if match is None:
            raise DotError(f"bad character at {pos}: {text[pos:pos + 20]!r}")
        kind = match.lastgroup
        if kind not in ("space", "comment"):
            tokens.append((kind, match.group()))
        pos = match.end()
    return tokens


def check_dot(text: str) -> dict:
    """Accept exactly: `digraph NAME { stmt* }` where a statement is `ID = value;`,
    `node|edge|graph [attrs];`, `ID [attrs];` or `ID -> ID [attrs];` (attributes
    optional), with every edge end a declared node. Returns the nodes (id -> attrs)
    and edges (list of (source, target, attrs))."""
    tokens = dot_tokens(text) + [("end", "")]
    pos = 0

    def peek(offset=0):
        return tokens[pos + offset]

    def take(kind=None, value=None):
        nonlocal pos
        token = tokens[pos]
        if (kind and token[0] != kind) or (value is not None and token[1] != value):
            raise DotError(f"expected {value or kind}, found {token[1]!r} (token {pos})")
        pos += 1
        return token[1]

    def value():
        kind, text_ = peek()
        if kind not in ("id", "string", "number"):
            raise DotError(f"expected a value, found {text_!r}")
        take()
        return text_

    def attributes():
        attrs = {}
        if peek()[1] != "[":
            return attrs
        take("punct", "[")
        while peek()[1] != "]":
            key = take("id")
            take("punct", "=")
            attrs[key] = value()
            if peek()[1] == ",":
                take("punct", ",")
                if peek()[1] == "]":
                    raise DotError("trailing comma")
        take("punct", "]")
        return attrs

    take("id", "digraph")
    take("id")
    take("punct", "{")
    nodes, edges = {}, []
    while peek()[1] != "}":
        if peek()[0] == "end":
            raise DotError("unbalanced braces: missing '}'")
        first = take("id")
        if peek()[1] == "=":
            take("punct", "=")
            value()
        elif first in ("node", "edge", "graph"):
            attributes()
        elif peek()[0] == "arrow":
            take("arrow")
            second = take("id")
            for end in (first, second):
                if end not in nodes:
                    raise DotError(f"edge to undeclared node {end}")
            edges.append((first, second, attributes()))
        else:
            if first in nodes:
                raise DotError(f"node {first} declared twice")
            nodes[first] = attributes()
        take("punct", ";")
    take("punct", "}")
    take("end")
    return {"nodes": nodes, "edges": edges}


def unquote(text: str) -> str:
    assert text.startswith('"') and text.endswith('"')
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text[1:-1])


def test_the_dot_checker_rejects_broken_text():
    good = ('digraph g {\n  rankdir=BT;\n  a [label="x \\"q\\" \\\\"];\n  b;\n'
            '  a -> b [label="0"];\n}\n')
    assert check_dot(good)["edges"] == [("a", "b", {"label": '"0"'})]
    broken = [
        good.replace("}\n", ""),                        # unbalanced braces
        good.replace('\\"q\\"', '"q"'),                 # an unescaped quote
        good.replace("  b;\n", ""),                   # edge to an undeclared node
        good.replace("b;", "b"),                        # missing semicolon
        good.replace("digraph", "graph"),               # not a digraph
        good.replace('"0"', '"0'),                      # unterminated string
        good + "}\n",                                   # text after the graph
        good.replace('label="0"', 'label="0",'),        # trailing comma
    ]
    for text in broken:
        assert text != good
        with pytest.raises(DotError):
            check_dot(text)


# --- a small Mermaid checker --------------------------------------------------------------

_MERMAID_NODE = re.compile(r'^  (v\d+)(\(\[|\(|\[)"([^"]*)"(\]\)|\)|\])$')
_MERMAID_EDGE = re.compile(r"^  (v\d+) -->(?:\|(\d+)\|)? (v\d+)$")
_MERMAID_STYLE = re.compile(r"^  (classDef \w+ [\w:#,-]+|class (v\d+(?:,v\d+)*) \w+)$")


def check_mermaid(text: str) -> dict:
    lines = text.splitlines()
    if not lines or lines[0] not in ("flowchart BT", "flowchart LR", "flowchart TD"):
        raise ValueError(f"not a flowchart: {lines[:1]}")
    nodes, edges, classes = {}, [], []
    for line in lines[1:]:
        if m := _MERMAID_NODE.match(line):
            assert m.group(1) not in nodes, f"{m.group(1)} declared twice"
            pairs = {"([": "])", "(": ")", "[": "]"}
            assert pairs[m.group(2)] == m.group(4), f"mismatched shape: {line}"
            nodes[m.group(1)] = m.group(3)
        elif m := _MERMAID_EDGE.match(line):
            edges.append((m.group(1), m.group(3), m.group(2)))
        elif m := _MERMAID_STYLE.match(line):
            classes.append(line.split())
        else:
            raise ValueError(f"unexpected line: {line!r}")
    for source, target, _ in edges:
        assert source in nodes and target in nodes, f"edge {source} -> {target}"
    for words in classes:
        if words[0] == "class":
            assert all(i in nodes for i in words[1].split(","))
    return {"nodes": nodes, "edges": edges, "classes": classes}


def test_the_mermaid_checker_rejects_broken_text():
    good = 'flowchart BT\n  v0(["x"])\n  v1["*"]\n  v0 -->|0| v1\n'
    check_mermaid(good)
    for text in (good.replace("flowchart BT", "graph"), good + "  v0 --> v9\n",
                 good.replace('["*"]', '["a"b"]'), good.replace('(["x"])', '(["x"]')):
        with pytest.raises((ValueError, AssertionError)):
            check_mermaid(text)


# --- determinism --------------------------------------------------------------------------

def test_the_same_program_gives_the_same_text_in_process():
    first = jacli.compile(POLAR)
    second = jacli.compile(POLAR)
    assert to_dot(first, None) == to_dot(first, None) == to_dot(second, None)
    assert to_mermaid(first, None) == to_mermaid(second, None)
    values = first.trace({"x": 3.0, "y": 4.0}).values
    assert to_dot(first, ["r"], values) == to_dot(second, ["r"], values)


@pytest.mark.parametrize("fmt", ["dot", "mermaid"])
def test_the_same_text_from_fresh_processes_with_different_hash_seeds(fmt):
    code = ("import sys, jacli, jacli.graph as g\n"
            f"p = jacli.compile({POLAR!r})\n"
            f"sys.stdout.write(g.to_{fmt}(p, None, p.trace({{'x': 3.0, 'y': 4.0}}).values))\n")
    outputs = []
    for seed in ("0", "1", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                env=env, cwd=REPO, timeout=120)
        assert result.returncode == 0, result.stderr.decode()
        outputs.append(result.stdout)
    program = jacli.compile(POLAR)
    here = (to_dot if fmt == "dot" else to_mermaid)(
        program, None, program.trace({"x": 3.0, "y": 4.0}).values)
    assert outputs[0] == outputs[1] == outputs[2] == here.encode()


# --- DOT ----------------------------------------------------------------------------------

def test_dot_is_valid_and_draws_every_needed_entry():
    program = jacli.compile(POLAR)
    text = to_dot(program, None)
    assert text.startswith("digraph jacli {\n")
    graph = check_dot(text)
    needed = program.tape.dependencies(program.tape.output_nodes)
    assert list(graph["nodes"]) == [f"v{i}" for i, n in enumerate(needed) if n]
    edges = sum(len(node.args) for node, n in zip(program.tape.nodes, needed) if n)
    assert len(graph["edges"]) == edges


def test_dot_labels_name_inputs_constants_ops_lets_and_outputs():
    program = jacli.compile(POLAR)
    graph = check_dot(to_dot(program, None))
    labels = {i: unquote(a["label"]) for i, a in graph["nodes"].items()}
    tape = program.tape
    x, y = tape.variable_nodes["x"], tape.variable_nodes["y"]
    assert labels[f"v{x}"] == "x" and labels[f"v{y}"] == "y"
    assert graph["nodes"][f"v{x}"]["shape"] == "ellipse"
    assert graph["nodes"][f"v{tape.names['r']}"]["shape"] == "box"
    assert labels[f"v{tape.names['rr']}"] == "+\n(rr)"
    assert labels[f"v{tape.names['r']}"] == "sqrt\n(r)"
    assert labels[f"v{tape.names['theta']}"] == "atan2\n(theta)"
    assert "1e-300" in labels.values()
    f3 = tape.output_nodes[tape.outputs.index("f3")]
    assert labels[f"v{f3}"] == "+\n(f3)"
    for name in ("r", "theta", "f3"):                      # outputs are marked
        assert graph["nodes"][f"v{tape.names.get(name, f3)}"].get("peripheries") == "2"
    assert "peripheries" not in graph["nodes"][f"v{tape.names['rr']}"]  # a let is not


def test_a_repeated_argument_gives_two_edges_in_order():
    program = jacli.compile("x*x")
    graph = check_dot(to_dot(program, None))
    assert graph["edges"] == [("v0", "v1", {"label": '"0"'}), ("v0", "v1", {"label": '"1"'})]
    mermaid = check_mermaid(to_mermaid(program, None))
    assert mermaid["edges"] == [("v0", "v1", "0"), ("v0", "v1", "1")]


def test_edges_follow_argument_order():
    program = jacli.compile("y - x")
    graph = check_dot(to_dot(program, None))
    assert graph["edges"] == [("v0", "v2", {"label": '"0"'}), ("v1", "v2", {"label": '"1"'})]
    assert unquote(graph["nodes"]["v0"]["label"]) == "y"


def test_only_the_selected_outputs_are_drawn():
    program = jacli.compile("a = sin(x)\nb = cos(y)")
    graph = check_dot(to_dot(program, ["b"]))
    labels = [unquote(a["label"]) for a in graph["nodes"].values()]
    assert labels == ["y", "cos\n(b)"]
    with pytest.raises(jacli.JacliError):
        to_dot(program, ["nope"])


def test_values_are_appended_to_every_label():
    program = jacli.compile(POLAR)
    values = program.trace({"x": 3.0, "y": 4.0}).values
    graph = check_dot(to_dot(program, None, values))
    labels = {i: unquote(a["label"]) for i, a in graph["nodes"].items()}
    tape = program.tape
    assert labels[f"v{tape.names['r']}"] == "sqrt\n(r)\n= 5"
    assert labels[f"v{tape.names['rr']}"] == "+\n(rr)\n= 25"
    assert labels[f"v{tape.names['theta']}"].endswith("= " + format(0.9272952180016122, ".6g"))
    assert labels[f"v{tape.variable_nodes['x']}"] == "x\n= 3"
    assert all("\n= " in label for label in labels.values())
    mermaid = check_mermaid(to_mermaid(program, None, values))
    assert mermaid["nodes"][f"v{tape.names['r']}"] == "sqrt<br>(r)<br>= 5"
    with pytest.raises(ValueError):
        to_dot(program, None, values[:-1])


def test_extreme_numbers_are_rendered_safely():
    program = jacli.compile("let tiny_1 = 1e-300 * x\n"
                            "big = tiny_1 / 2.5e-308 + 1.7976931348623157e308")
    values = program.trace({"x": float("inf")}).values
    for vals in (None, values):
        graph = check_dot(to_dot(program, None, vals))
        labels = [unquote(a["label"]) for a in graph["nodes"].values()]
        assert labels[0].startswith("1e-300") and "2.5e-308" in "".join(labels)
        assert any("(tiny_1)" in label for label in labels)
        mermaid = check_mermaid(to_mermaid(program, None, vals))
        assert any("(tiny_1)" in label for label in mermaid["nodes"].values())
    assert "= inf" in to_dot(program, None, values)


def test_labels_are_escaped():
    from jacli.graph import _dot_string, _mermaid_text
    label = _dot_string('a "b" c:\\ d\nnext')
    assert unquote(check_dot("digraph g { a [label=" + label + "]; }")["nodes"]["a"]["label"]) \
        == 'a "b" c:\\ d\nnext'
    assert unquote(_dot_string('say "hi" \\ \n')) == 'say "hi" \\ \n'
    assert _mermaid_text('a "b" <c> & #quot;') == "a #quot;b#quot; #lt;c#gt; #amp; #35;quot;"


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
def test_graphviz_renders_the_dot(tmp_path):
    program = jacli.compile(POLAR)
    source = to_dot(program, None, program.trace({"x": 3.0, "y": 4.0}).values)
    result = subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    assert b"<svg" in result.stdout


# --- Mermaid ------------------------------------------------------------------------------

def test_mermaid_is_a_flowchart_with_declared_ids_and_marked_kinds():
    program = jacli.compile(POLAR)
    text = to_mermaid(program, None)
    assert text.startswith("flowchart")
    graph = check_mermaid(text)
    tape = program.tape
    x = f"v{tape.variable_nodes['x']}"
    assert graph["nodes"][x] == "x"
    assert f'  {x}(["x"])' in text.splitlines()                 # inputs are stadiums
    assert graph["nodes"][f"v{tape.names['rr']}"] == "+<br>(rr)"
    classes = {words[2]: words[1].split(",") for words in graph["classes"]
               if words[0] == "class"}
    assert sorted(classes["input"]) == sorted(f"v{tape.variable_nodes[v]}" for v in "xy")
    outputs = [f"v{i}" for i in tape.output_nodes]
    assert classes["output"] == outputs


# --- depth --------------------------------------------------------------------------------

def test_a_10000_deep_program_exports_quickly_without_recursion():
    depth = 10_000
    program = jacli.compile("sin(" * depth + "x" + ")" * depth)
    values = program.trace({"x": 0.5}).values
    start = time.perf_counter()
    dot = to_dot(program, None, values)
    mermaid = to_mermaid(program, None, values)
    elapsed = time.perf_counter() - start
    assert elapsed < 5, f"took {elapsed:.1f}s"
    graph = check_dot(dot)
    assert len(graph["nodes"]) == depth + 1 and len(graph["edges"]) == depth
    assert len(check_mermaid(mermaid)["edges"]) == depth

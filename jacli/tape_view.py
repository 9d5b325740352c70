"""The tape as rows: one per entry, with its value, local partials and adjoints.

Shared by the Rich view (render.py) and the plain/JSON/CSV writers below.
"""

from __future__ import annotations

import json
from typing import TextIO

import numpy as np

from .api import Program, Trace
from .array_prims import Written, summed_text
from .errors import shorten
from .formats import json_number
from .graph import shape_label
from .prims import PRIMITIVES
from .tape import CONST, VAR

#: An axis longer than twice this shows its first and last EDGE items around `...`
#: in the short form of a value (plain and table); json and csv give every item.
EDGE = 3


def entry_name(index: int) -> str:
    return f"v{index}"


def tape_rows(program: Program, outputs: list[str], trace: Trace | None,
              shapes: list[tuple] | None = None) -> list[dict]:
    """Every tape entry the selected outputs need, in tape order. In a run of arrays
    (the trace's shapes, or `shapes` from a shape pass without values) each row has its
    `shape`, and a structural entry's `partials` is None: it applies a linear map
    (`tape --explain` writes it), not a local partial."""
    tape = program.tape
    roots = [tape.output_node(o) for o in outputs]
    needed = tape.dependencies(roots)
    labels = tape.labels()
    if trace is not None:
        shapes = trace.shapes
    rows = []
    for index, node in enumerate(tape.nodes):
        if not needed[index]:
            continue
        if node.op == VAR:
            op = "input" if trace is None or node.name in trace.inputs else "param"
        else:
            op = node.op
        row = {
            "index": index,
            "entry": entry_name(index),
            "op": op,
            "args": [entry_name(a) for a in node.args],
            "text": node.name if node.op == VAR else (repr(node.value) if node.op == CONST
                                                        else _source_text(tape, index)),
            "names": labels.get(index, []),
        }
        if shapes is not None:
            row["shape"] = shapes[index]
        if trace is not None:
            row["value"] = trace.values[index]
            row["partials"] = [trace.partials.get((index, p)) for p in range(len(node.args))]
            if shapes is not None and node.args and PRIMITIVES[node.op].vjp is not None:
                row["partials"] = None
            row["adjoints"] = [adjoints[index] for adjoints in trace.adjoints]
        rows.append(row)
    return rows


#: The longest source text a tape row shows; longer ones are cut as the warnings cut
#: theirs, so that the tape of `sin(` nested 100,000 deep is linear, not quadratic.
TEXT_LIMIT = 40


def _source_text(tape, index: int) -> str:
    """The source text of an entry, at most TEXT_LIMIT characters (cut without copying
    the whole text first)."""
    span = tape.nodes[index].span
    if not span:
        return ""
    start, end = span
    if end - start <= TEXT_LIMIT:
        return tape.source[start:end]
    return tape.source[start:start + TEXT_LIMIT - 3] + "..."


def _number(x, edge: int | None = None) -> str:
    # "-": not computed (no input depends on it)
    if x is None:
        return "-"
    return repr(x) if type(x) is float else array_text(x, edge)


def array_text(value, edge: int | None = None, number=None) -> str:
    """A value as nested brackets without spaces, `[[1.0,2.0],[3.0,4.0]]`, each number
    as `number` gives it (default: every digit); with `edge`, the short form: an axis
    longer than 2 * edge shows its first and last `edge` items around `...`."""
    number = number or (lambda x: repr(float(x)))
    a = np.asarray(value)
    if a.ndim == 0:
        return number(a)
    # one level per axis: the depth is the rank (at most NumPy's 64 axes)
    n = len(a)
    if edge is not None and n > 2 * edge:
        items = ([array_text(a[i], edge, number) for i in range(edge)] + ["..."]
                 + [array_text(a[i], edge, number) for i in range(n - edge, n)])
    else:
        items = [array_text(item, edge, number) for item in a]
    return "[" + ",".join(items) + "]"


def write_tape(rows: list[dict], fmt: str, out: TextIO) -> None:
    if fmt == "json":
        for row in rows:
            parts = [f'"{k}": {json.dumps(row[k])}' for k in
                     ("index", "entry", "op", "args", "text", "names")]
            if "shape" in row:
                parts.append(f'"shape": {json.dumps(list(row["shape"]))}')
            if "value" in row:
                parts.append(f'"value": {_json(row["value"])}')
                parts.append('"partials": ' + ("null" if row["partials"] is None else
                                               "[" + ", ".join(map(_json, row["partials"])) + "]"))
                parts.append('"adjoints": [' + ", ".join(map(_json, row["adjoints"])) + "]")
            out.write("{" + ", ".join(parts) + "}\n")
        return
    with_values = bool(rows) and "value" in rows[0]
    with_shapes = bool(rows) and "shape" in rows[0]
    if fmt == "csv":
        header = ["entry", "op", "args", "text", "names"]
        if with_shapes:
            header.append("shape")
        if with_values:
            header += ["value", "partials", "adjoints"]
        out.write(",".join(header) + "\n")
        for row in rows:
            fields = [row["entry"], row["op"], " ".join(row["args"]), row["text"],
                      " ".join(row["names"])]
            if with_shapes:
                fields.append(shape_label(row["shape"]))
            if with_values:
                partials = row["partials"]
                fields += [_number(row["value"]),
                           "" if partials is None else " ".join(map(_number, partials)),
                           " ".join(map(_number, row["adjoints"]))]
            out.write(",".join(_csv_field(f) for f in fields) + "\n")
        return
    edge = EDGE if with_shapes else None
    for row in rows:  # plain: `v4 = mul v2 v3  # x^2*y  value=... partials=... adjoints=...`
        line = row["entry"]
        if with_shapes:   # jaxpr style: v2:f64[2] = matmul v0 v1
            line += ":" + shape_label(row["shape"])
        line += f" = {row['op']}"
        if row["args"]:
            line += " " + " ".join(row["args"])
        line += f"  # {row['text']}"
        if row["names"]:
            line += f"  ({', '.join(row['names'])})"
        if with_values:
            line += f"  value={_number(row['value'], edge)}"
            if row["partials"]:
                line += " partials=" + ",".join(_number(p, edge) for p in row["partials"])
            line += " adjoints=" + ",".join(_number(a, edge) for a in row["adjoints"])
        out.write(line + "\n")


def _json(x) -> str:
    if x is None:
        return "null"
    if type(x) is float:
        return json_number(x)
    return array_text(x, number=lambda v: json_number(float(v))).replace(",", ", ")


def _csv_field(text: str) -> str:
    if any(c in text for c in ',"\r\n'):   # a bare \r ends a record for many readers
        return '"' + text.replace('"', '""') + '"'
    return text


def explain_steps(rows: list[dict], outputs: list[str], trace: Trace) -> list[dict]:
    """The backward pass as it is taught: per output, one step per tape entry from
    last to first, with its incoming adjoint, its local partials and the contribution
    adjoint × partial it sends to each argument; then the gradient (a Jacobian row).

    Each entry's adjoint is final when its step comes: every user of an entry comes
    later on the tape, so it has already sent its contribution.

    In a run of arrays there is one sweep per output component, and each contribution
    says how it was made: `partial` for an elementwise entry (ḡ * partial, summed over
    the axes the argument was broadcast along), else `rule`, the linear map applied to
    the adjoint ḡ as its primitive writes it (array_prims.py).
    """
    if trace.contributions is not None:
        return _array_steps(rows, trace)
    by_entry = {row["entry"]: row for row in rows}
    steps = []
    for k, output in enumerate(outputs):
        number = 0
        for row in reversed(rows):
            adjoint = row["adjoints"][k]
            if adjoint is None or not row["args"]:
                continue
            number += 1
            sends = [{"to": arg, "to_text": by_entry[arg]["text"], "partial": partial,
                      "contribution": adjoint * partial}
                     for arg, partial in zip(row["args"], row["partials"]) if partial is not None]
            steps.append({"output": output, "step": number, "entry": row["entry"],
                          "op": row["op"], "text": row["text"], "adjoint": adjoint,
                          "sends": sends})
        gradient = {name: float(trace.jacobian[k, j]) for j, name in enumerate(trace.inputs)}
        steps.append({"output": output, "gradient": gradient})
    return steps


def _array_steps(rows: list[dict], trace: Trace) -> list[dict]:
    by_entry = {row["entry"]: row for row in rows}
    nodes = trace.tape.nodes
    steps = []
    for k, output in enumerate(trace.output_components):
        sent, number = trace.contributions[k], 0
        for row in reversed(rows):
            adjoint = row["adjoints"][k]
            if adjoint is None or not row["args"]:
                continue
            number += 1
            index = row["index"]
            primitive = PRIMITIVES[nodes[index].op]
            sends = []
            for position, arg in enumerate(row["args"]):
                if (index, position) not in sent:
                    continue
                send = {"to": arg, "to_text": by_entry[arg]["text"], "partial": None}
                if primitive.vjp is None:   # elementwise: ḡ * partial
                    partial = trace.partials[(index, position)]
                    send["partial"] = partial
                    send["summed"] = summed_text(   # unbroadcast: summed to the argument's shape
                        np.broadcast_shapes(np.shape(adjoint), np.shape(partial)),
                        by_entry[arg]["shape"])
                    send["rule"] = "ḡ * partial" + send["summed"]
                else:
                    send["rule"] = _rule_text(primitive, position, row, by_entry, nodes)
                send["contribution"] = sent[(index, position)]
                sends.append(send)
            steps.append({"output": output, "step": number, "entry": row["entry"],
                          "op": row["op"], "text": row["text"], "shape": row["shape"],
                          "adjoint": adjoint, "sends": sends})
        gradient = {name: float(trace.jacobian[k, j])
                    for j, name in enumerate(trace.input_components)}
        steps.append({"output": output, "gradient": gradient})
    return steps


def _rule_text(primitive, position: int, row: dict, by_entry: dict, nodes) -> str:
    """The linear map an entry applies to its adjoint ḡ for argument `position`, as the
    primitive's table writes it (array_prims.py), naming variables and constants as the
    program does and other entries by their names (v3)."""
    if primitive.explain is None:   # an internal primitive of the derivative rules
        return f"the vjp of {primitive.name} applied to ḡ"
    args = [by_entry[a] for a in row["args"]]
    names = tuple(shorten(a["text"], 20) if a["op"] in ("input", "param", "const")
                  else a["entry"] for a in args)
    written = Written(names, tuple(a["shape"] for a in args), nodes[row["index"]].params,
                      row["entry"], row["shape"])
    return primitive.explain[position](written)


def write_explain(steps: list[dict], fmt: str, out: TextIO) -> None:
    if fmt == "json":
        for step in steps:
            out.write(_explain_json(step) + "\n")
        return
    for step in steps:  # plain
        if "gradient" in step:
            parts = ", ".join(f"d{step['output']}/d{n} = {_number(v)}"
                              for n, v in step["gradient"].items())
            out.write(f"gradient of {step['output']}: {parts}\n\n")
            continue
        if step["step"] == 1:
            out.write(f"backward sweep for {step['output']}, seeded with adjoint 1:\n")
        shape = ":" + shape_label(step["shape"]) if "shape" in step else ""
        out.write(f"{step['step']}. {step['entry']}{shape} = {step['op']}  # {step['text']}  "
                  f"adjoint {_number(step['adjoint'], EDGE)}\n")
        for send in step["sends"]:
            out.write(f"   -> {send['to']} ({send['to_text']}): {_send_text(step, send)} = "
                      f"{_number(send['contribution'], EDGE)}\n")


def _send_text(step: dict, send: dict, number=_number) -> str:
    """How a contribution is made: `adjoint * partial` (v1; in a run of arrays with
    `, summed to [3]` where the argument was broadcast), or a linear map of ḡ."""
    if "rule" not in send:
        return f"{number(step['adjoint'])} * {number(send['partial'])}"
    if send["partial"] is None:
        return send["rule"]
    return (f"{number(step['adjoint'], EDGE)} * {number(send['partial'], EDGE)}"
            + send["summed"])


def _explain_json(step: dict) -> str:
    if "gradient" in step:
        body = ", ".join(f"{json.dumps(n)}: {_json(v)}" for n, v in step["gradient"].items())
        return f'{{"output": {json.dumps(step["output"])}, "gradient": {{{body}}}}}'
    sends = ", ".join(
        f'{{"to": {json.dumps(s["to"])}, "to_text": {json.dumps(s["to_text"])}, '
        f'"partial": {_json(s["partial"])}, '
        + (f'"rule": {json.dumps(s["rule"])}, ' if "rule" in s else "")
        + f'"contribution": {_json(s["contribution"])}}}'
        for s in step["sends"])
    shape = f'"shape": {json.dumps(list(step["shape"]))}, ' if "shape" in step else ""
    return (f'{{"output": {json.dumps(step["output"])}, "step": {step["step"]}, '
            f'"entry": {json.dumps(step["entry"])}, "op": {json.dumps(step["op"])}, '
            f'"text": {json.dumps(step["text"])}, {shape}"adjoint": {_json(step["adjoint"])}, '
            f'"sends": [{sends}]}}')

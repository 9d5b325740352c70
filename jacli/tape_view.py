"""The tape as rows: one per entry, with its value, local partials and adjoints.

Shared by the Rich view (render.py) and the plain/JSON/CSV writers below.
"""

from __future__ import annotations

import json
from typing import TextIO

from .api import Program, Trace
from .formats import json_number
from .tape import CONST, VAR


def entry_name(index: int) -> str:
    return f"v{index}"


def tape_rows(program: Program, outputs: list[str], trace: Trace | None) -> list[dict]:
    """Every tape entry the selected outputs need, in tape order."""
    tape = program.tape
    roots = [tape.output_node(o) for o in outputs]
    needed = tape.dependencies(roots)
    labels = tape.labels()
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
        if trace is not None:
            row["value"] = trace.values[index]
            row["partials"] = [trace.partials.get((index, p)) for p in range(len(node.args))]
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


def _number(x) -> str:
    return "-" if x is None else repr(x)  # "-": not computed (no input depends on it)


def write_tape(rows: list[dict], fmt: str, out: TextIO) -> None:
    if fmt == "json":
        for row in rows:
            parts = [f'"{k}": {json.dumps(row[k])}' for k in
                     ("index", "entry", "op", "args", "text", "names")]
            if "value" in row:
                parts.append(f'"value": {_json(row["value"])}')
                parts.append('"partials": [' + ", ".join(map(_json, row["partials"])) + "]")
                parts.append('"adjoints": [' + ", ".join(map(_json, row["adjoints"])) + "]")
            out.write("{" + ", ".join(parts) + "}\n")
        return
    with_values = bool(rows) and "value" in rows[0]
    if fmt == "csv":
        header = ["entry", "op", "args", "text", "names"]
        if with_values:
            header += ["value", "partials", "adjoints"]
        out.write(",".join(header) + "\n")
        for row in rows:
            fields = [row["entry"], row["op"], " ".join(row["args"]), row["text"],
                      " ".join(row["names"])]
            if with_values:
                fields += [_number(row["value"]), " ".join(map(_number, row["partials"])),
                           " ".join(map(_number, row["adjoints"]))]
            out.write(",".join(_csv_field(f) for f in fields) + "\n")
        return
    for row in rows:  # plain: `v4 = mul v2 v3  # x^2*y  value=... partials=... adjoints=...`
        line = f"{row['entry']} = {row['op']}"
        if row["args"]:
            line += " " + " ".join(row["args"])
        line += f"  # {row['text']}"
        if row["names"]:
            line += f"  ({', '.join(row['names'])})"
        if with_values:
            line += f"  value={_number(row['value'])}"
            if row["partials"]:
                line += " partials=" + ",".join(map(_number, row["partials"]))
            line += " adjoints=" + ",".join(map(_number, row["adjoints"]))
        out.write(line + "\n")


def _json(x) -> str:
    return "null" if x is None else json_number(x)


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
    """
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
        out.write(f"{step['step']}. {step['entry']} = {step['op']}  # {step['text']}  "
                  f"adjoint {_number(step['adjoint'])}\n")
        for send in step["sends"]:
            out.write(f"   -> {send['to']} ({send['to_text']}): {_number(step['adjoint'])} * "
                      f"{_number(send['partial'])} = {_number(send['contribution'])}\n")


def _explain_json(step: dict) -> str:
    if "gradient" in step:
        body = ", ".join(f"{json.dumps(n)}: {_json(v)}" for n, v in step["gradient"].items())
        return f'{{"output": {json.dumps(step["output"])}, "gradient": {{{body}}}}}'
    sends = ", ".join(
        f'{{"to": {json.dumps(s["to"])}, "to_text": {json.dumps(s["to_text"])}, '
        f'"partial": {_json(s["partial"])}, "contribution": {_json(s["contribution"])}}}'
        for s in step["sends"])
    return (f'{{"output": {json.dumps(step["output"])}, "step": {step["step"]}, '
            f'"entry": {json.dumps(step["entry"])}, "op": {json.dumps(step["op"])}, '
            f'"text": {json.dumps(step["text"])}, "adjoint": {_json(step["adjoint"])}, '
            f'"sends": [{sends}]}}')

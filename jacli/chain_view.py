"""`jacli chain`: the chain of local Jacobians as text, JSON Lines or Rich tables.
Only formats: jacli.chain computes."""

from __future__ import annotations

from typing import TextIO

import numpy as np

from .api import components
from .chain import Chain, Step
from .formats import json_number


def _names(chain: Chain, names: list[str]) -> list[str]:
    return [c for name in names for c in components(name, chain.shapes.get(name, ()))]


def _rows(matrix: np.ndarray) -> list[list[float]]:
    return [[float(x) for x in row] for row in matrix]


def _matrix_json(matrix: np.ndarray) -> str:
    return "[" + ", ".join("[" + ", ".join(json_number(x) for x in row) + "]"
                           for row in _rows(matrix)) + "]"


def _shape_text(shape: tuple) -> str:
    return f"f64[{','.join(map(str, shape))}]"


def write_chain(chain: Chain, fmt: str, out: TextIO) -> None:
    """plain: a block per statement (its value, each local Jacobian, the accumulated one),
    then the program's Jacobian; json: one object per statement, then one for the
    program."""
    inputs = _names(chain, chain.inputs)
    if fmt == "json":
        for step in chain.steps:
            local = ", ".join(f'"{use}": {_matrix_json(block)}'
                              for use, block in zip(step.uses, step.local))
            out.write(f'{{"statement": "{step.name}", "shape": {list(step.shape)}, '
                      f'"value": [{", ".join(json_number(float(x)) for x in step.value)}], '
                      f'"uses": [{", ".join(chr(34) + u + chr(34) for u in step.uses)}], '
                      f'"local": {{{local}}}, "jacobian": {_matrix_json(step.jacobian)}}}\n')
        names = ", ".join(f'"{c}"' for c in inputs)
        outputs = ", ".join(f'"{c}"' for c in _names(chain, chain.outputs))
        out.write(f'{{"outputs": [{outputs}], "inputs": [{names}], '
                  f'"jacobian": {_matrix_json(chain.jacobian)}}}\n')
        return
    out.write(f"inputs: {' '.join(inputs)}\n")
    for step in chain.steps:
        value = " ".join(repr(float(x)) for x in step.value)
        out.write(f"\n{step.name}: {_shape_text(step.shape)} = {value}\n")
        for use, block in zip(step.uses, step.local):
            out.write(f"  local d{step.name}/d{use}: {_lines(block)}\n")
        out.write(f"  J({step.name}) = {' + '.join(_product(step)) or '0'}: "
                  f"{_lines(step.jacobian)}\n")
    out.write(f"\nJacobian ({', '.join(chain.outputs)} by {', '.join(chain.inputs)}): "
              f"{_lines(chain.jacobian)}\n")


def _lines(matrix: np.ndarray) -> str:
    return "; ".join(" ".join(repr(x) for x in row) for row in _rows(matrix))


def _product(step: Step) -> list[str]:
    """J(b) = L[b,a] J(a) + L[b,x]: an input's own J is the identity."""
    return [f"L[{step.name},{use}] J({use})" for use in step.uses]


def chain_renderable(chain: Chain):
    """Rich: per statement, its local Jacobians and its accumulated Jacobian as labelled
    matrices; then the program's Jacobian."""
    from rich.console import Group
    from rich.text import Text

    from .render import Column, Fitted

    inputs = _names(chain, chain.inputs)
    known = set(chain.inputs)

    def matrix(title, rows: list[str], cols: list[str], values: np.ndarray) -> Fitted:
        return Fitted(title, [Column("", rows, justify="left")],
                      [Column(c, list(values[:, j]), style="bold") for j, c in enumerate(cols)])

    parts = [Text(f"inputs: {', '.join(inputs)}", style="dim")]
    for step in chain.steps:
        rows = components(step.name, step.shape)
        value = ", ".join(format(float(x), ".10g") for x in step.value[:6])
        more = " …" if len(step.value) > 6 else ""
        parts.append(Text(f"\n{step.name}: {_shape_text(step.shape)} = {value}{more}",
                          style="bold"))
        for use, block in zip(step.uses, step.local):
            kind = "input" if use in known else "statement"
            parts.append(matrix(f"local ∂{step.name}/∂{use} ({kind})", rows,
                                components(use, chain.shapes.get(use, ())), block))
        formula = " + ".join(_product(step)) or "0 (a constant)"
        parts.append(matrix(f"J({step.name}) = {formula}", rows, inputs, step.jacobian))
    parts.append(matrix("\nJacobian of the program", _names(chain, chain.outputs), inputs,
                        chain.jacobian))
    return Group(*parts)

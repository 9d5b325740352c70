"""The chain of local Jacobians: each statement's Jacobian with respect to the earlier
statements and inputs it uses directly, and their accumulation into the program's.

    >>> import jacli
    >>> steps = jacli.compile("let a = x*y; f = sin(a) + x").chain({"x": 1.0, "y": 2.0})
    >>> [(s.name, s.uses) for s in steps.steps]
    [('a', ['x', 'y']), ('f', ['a', 'x'])]

Statement k's local Jacobian L_kj is taken with the statements and inputs it uses held
as independent variables (the program cut at them); its Jacobian with respect to the
inputs is then J_k = sum_j L_kj J_j, an input's own J being the identity. For a pure
chain of `let`s this is the textbook product J = L_3 L_2 L_1. Parameters (variables not
differentiated, outside `wrt`) are held constant, as in `jac`.
"""

from __future__ import annotations

import math
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from .engine import WarningLog, evaluate, forward
from .shapes import infer_shapes
from .tape import CONST, VAR, Tape


class Step(NamedTuple):
    """One statement: its value, what it uses directly, and its Jacobians."""
    name: str
    shape: tuple
    value: np.ndarray             # flat over components
    uses: list[str]               # earlier statements and inputs, in order
    local: list[np.ndarray]       # d step / d use, (size, size of the use), per use
    jacobian: np.ndarray          # d step / d inputs, (size, n)


class Chain(NamedTuple):
    inputs: list[str]
    outputs: list[str]
    shapes: dict[str, tuple]      # every input's and statement's shape
    steps: list[Step]             # the statements the outputs need, in program order
    jacobian: np.ndarray          # the outputs' Jacobian, (m, n): the last J_k stacked
    warnings: list


def chain(program, point: Mapping, wrt: Sequence[str] | None = None,
          outputs: Sequence[str] | None = None) -> Chain:
    """The chain of local Jacobians of `program` at one point (see the module's doc)."""
    outputs = program.select_outputs(outputs)
    inputs = program.select_inputs(wrt, outputs)
    tape = program.tape
    output_nodes = [tape.output_node(o) for o in outputs]
    env, _, _, _, var_shapes = program._bind(point, output_nodes, batch=False)
    static = program._shape_pass(var_shapes, output_nodes)
    needed = tape.dependencies(output_nodes)
    log = WarningLog()
    values = forward(tape, env, needed, log)

    # The cut points: each input's node, and each needed statement's node (the first
    # statement to name a node owns it; a later one naming it again is an alias).
    owner: dict[int, str] = {tape.variable_nodes[name]: name for name in inputs
                             if name in tape.variable_nodes}
    statements = [(name, node) for name, node in tape.names.items() if needed[node]]
    shapes = {name: tuple(var_shapes.get(name, ())) for name in inputs}
    offsets, n = {}, 0
    for name in inputs:
        offsets[name] = n
        n += math.prod(shapes[name])
    jacobians: dict[str, np.ndarray] = {}
    for name in inputs:
        size = math.prod(shapes[name])
        jacobians[name] = np.eye(size, n, offsets[name])

    steps = []
    for name, node in statements:
        shape = tuple(static[node]) if static is not None else ()
        shapes[name] = shape
        if node in owner:   # an alias of an input or of an earlier statement
            uses = [owner[node]]
            local = [np.eye(math.prod(shape))]
        elif tape.nodes[node].op in (VAR, CONST):   # a parameter or a number: constant
            uses, local = [], []
        else:
            uses, local = _local_jacobian(tape, node, owner, values, static, env, log)
        size = math.prod(shape)
        jacobian = np.zeros((size, n))
        for use, block in zip(uses, local):
            jacobian += block @ jacobians[use]
        jacobians[name] = jacobian
        value = np.asarray(values[node], dtype=float).reshape(-1)
        steps.append(Step(name, shape, value, uses, local, jacobian))
        owner.setdefault(node, name)
    for name, node in zip(outputs, output_nodes):   # an output that names an input
        shapes.setdefault(name, tuple(var_shapes.get(name, ())))
    final = np.concatenate([jacobians[o] for o in outputs], axis=0) if outputs else \
        np.zeros((0, n))
    return Chain(inputs, outputs, shapes, steps, final, log.warnings)


def _local_jacobian(tape: Tape, root: int, owner: dict[int, str], values: list,
                    static, env: dict, log: WarningLog) -> tuple[list[str], list[np.ndarray]]:
    """The statement at `root` as a program of its direct uses (the cut points it reaches
    before any other), and its Jacobian with respect to each of them."""
    cone = [False] * (root + 1)
    cone[root] = True
    used = set()
    for index in range(root, -1, -1):   # backward over the tape: no recursion
        if not cone[index]:
            continue
        if index != root and index in owner:
            used.add(index)
            continue
        for arg in tape.nodes[index].args:
            cone[arg] = True
    uses = sorted(used, key=lambda i: (tape.nodes[i].op != VAR, i))
    names = [owner[i] for i in uses]

    part = Tape(tape.source)
    new: dict[int, int] = {}
    part_env, part_shapes = {}, {}
    for index in range(root + 1):
        if not cone[index]:
            continue
        node = tape.nodes[index]
        if index in used:
            new[index] = part.var(owner[index], node.span)
            part_env[owner[index]] = values[index][0]
            part_shapes[owner[index]] = tuple(static[index]) if static is not None else ()
        elif node.op == VAR:   # a parameter: held constant at its value
            new[index] = part.var(node.name, node.span)
            part_env[node.name] = env[node.name]
            part_shapes[node.name] = tuple(static[index]) if static is not None else ()
        elif node.op == CONST:
            new[index] = part.const(node.value, node.span)
        else:
            new[index] = part.apply(node.op, tuple(new[a] for a in node.args), node.span,
                                    node.params)
    if static is not None:
        part.set_shapes(part_shapes, infer_shapes(part, part_shapes))
    sweep = evaluate(part, part_env, 1, [new[root]], names, log)
    jacobian = sweep.jacobian[0]
    local, start = [], 0
    for index in uses:
        size = math.prod(static[index]) if static is not None else 1
        local.append(jacobian[:, start:start + size])
        start += size
    return names, local

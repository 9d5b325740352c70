"""The Python API: compile a program once, then evaluate it at one point or many.

    >>> import jacli
    >>> prog = jacli.compile("r = sqrt(x^2 + y^2); theta = atan2(y, x)")
    >>> prog.jacobian({"x": 3.0, "y": 4.0}).jacobian
    array([[ 0.6 ,  0.8 ],
           [-0.16,  0.12]])

A point is a mapping from variable names to numbers; give arrays of equal length
(or a mix of arrays and numbers, which are shared) to evaluate B points at once.
Results of a single point have no batch axis; results of arrays have it first.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import numpy as np

from .engine import DomainWarning, Partials, WarningLog, evaluate
from .engine import jvp as engine_jvp
from .engine import vjp as engine_vjp
from .errors import JacliError, shorten
from .parse import parse
from .symbolic import gradient_tape
from .prims import PRIMITIVES
from .shapes import infer_shapes, require_scalar_output
from .tape import CONST, VAR, Tape, paused_gc

#: Points are evaluated in chunks of this many, so memory stays bounded; fewer when the
#: derivatives of one point are many: a chunk's derivatives are at most CHUNK_FLOATS.
CHUNK = 1 << 13
CHUNK_FLOATS = 1 << 22
#: A Jacobian's chunk is smaller (2 MiB of derivatives): its one sweep over all seed
#: rows then works in cache (softmax of 200 at 1,000 points: 6 points a chunk, not 104,
#: takes half the time).
JACOBIAN_FLOATS = 1 << 18


class Result(NamedTuple):
    """Values (and derivatives) of a program at B points.

    `value` is (B, m) and `jacobian` (B, m, n); for a single point the B axis is
    dropped. `inputs` name the n columns, `outputs` the m rows.
    """
    inputs: list[str]
    outputs: list[str]
    at: dict[str, np.ndarray]
    value: np.ndarray
    jacobian: np.ndarray | None = None
    warnings: Sequence[DomainWarning] = ()
    jvp: np.ndarray | None = None        # (B, m): J.v
    vjp: np.ndarray | None = None        # (B, n): u^T.J
    hessian: np.ndarray | None = None    # (B, n, n)
    #: every variable's shape, then every output's (() for a scalar)
    shapes: Mapping[str, tuple] = {}

    @property
    def input_components(self) -> list[str]:
        """The n columns' names: x, or x[0], x[1], ... for an array, row-major."""
        return [c for name in self.inputs for c in components(name, self.shapes.get(name, ()))]

    @property
    def output_components(self) -> list[str]:
        """The m rows' names: y, or y[0], W[1][2], ..., row-major."""
        return [c for name in self.outputs for c in components(name, self.shapes.get(name, ()))]

    @property
    def blocks(self) -> dict[tuple[str, str], np.ndarray]:
        """The Jacobian per (output, input) pair, shaped as jax.jacobian gives it:
        (*output shape, *input shape), with the points first when batched."""
        if self.jacobian is None:
            raise ValueError("no Jacobian was computed")
        lead = self.jacobian.shape[:-2]
        out, row = {}, 0
        for o in self.outputs:
            so = tuple(self.shapes.get(o, ()))
            rows = int(np.prod(so, dtype=np.int64))
            col = 0
            for i in self.inputs:
                si = tuple(self.shapes.get(i, ()))
                cols = int(np.prod(si, dtype=np.int64))
                block = self.jacobian[..., row:row + rows, col:col + cols]
                out[(o, i)] = block.reshape(lead + so + si)
                col += cols
            row += rows
        return out

    @property
    def gradient(self) -> np.ndarray:
        """The Jacobian's only row: (B, n), or (n,) for one point."""
        if self.jacobian is None or len(self.outputs) != 1:
            raise ValueError("gradient needs a Jacobian of exactly one output")
        return self.jacobian[..., 0, :]


class Trace(NamedTuple):
    """One point's pass through the tape, for showing how the Jacobian is built."""
    tape: Tape
    inputs: list[str]
    outputs: list[str]
    output_nodes: list[int]
    values: list[float | None]                        # per node
    partials: dict[tuple[int, int], float]            # (node, argument position) -> value
    adjoints: list[list[float | None]]                # per output, per node
    jacobian: np.ndarray                              # (m, n)
    warnings: list[DomainWarning]


def compile(source: str) -> "Program":  # noqa: A001 - the natural name, like re.compile
    """Parse `source` into a Program, or raise JacliError pointing into it."""
    return Program(source)


class Program:
    """A parsed jacli program: its tape, outputs and variables."""

    def __init__(self, source: str):
        self.source = source
        self.tape = parse(source)
        needed = self.tape.dependencies(self.tape.output_nodes)
        #: Free variables of the outputs, in order of first appearance.
        self.variables: list[str] = [v for v in self.tape.variables
                                     if needed[self.tape.variable_nodes[v]]]
        #: Does the program use an array operation (a literal, a subscript, @, sum, ...)?
        #: Then it needs a shape pass, and its outputs may be arrays at scalar values.
        self._arrays = any(PRIMITIVES[node.op].shape is not None for node in self.tape.nodes
                           if node.op not in (CONST, VAR))

    @property
    def outputs(self) -> list[str]:
        return list(self.tape.outputs)

    @property
    def uses_arrays(self) -> bool:
        """Does the program use an array operation (a literal, an index, `@`, sum, ...)?
        Then its outputs may be arrays even at scalar values (`[x, y]`)."""
        return self._arrays

    def __repr__(self) -> str:
        return f"jacli.Program({self.source!r})"

    # --- selecting -------------------------------------------------------------------
    def select_outputs(self, outputs: Sequence[str] | None) -> list[str]:
        if not outputs:
            return self.outputs
        for name in outputs:
            if name not in self.tape.outputs:
                raise JacliError(f"no output named '{shorten(name)}'; the outputs are "
                                 + shorten(", ".join(self.tape.outputs), 200), origin="--out")
        if len(set(outputs)) != len(outputs):
            raise JacliError("an output is named twice", origin="--out")
        return list(outputs)

    def select_inputs(self, wrt: Sequence[str] | None,
                      outputs: Sequence[str] | None = None) -> list[str]:
        """`wrt` checked, or by default the free variables of the (selected) outputs."""
        if wrt is None:
            return self.needed_variables(outputs)
        self._check_names(wrt, self.variables, "a variable", "--wrt")
        seen: set[str] = set()   # sets, here and below: --wrt may name 10,000 inputs
        for name in wrt:
            if name in seen:
                raise JacliError(f"'{shorten(name)}' is named twice", origin="--wrt")
            seen.add(name)
        return list(wrt)

    def unused(self, names) -> list[str]:
        """The names in `names` that are not variables of the program."""
        variables = set(self.variables)
        return [n for n in names if n not in variables]

    def needed_variables(self, outputs: Sequence[str] | None = None) -> list[str]:
        """The variables that the outputs (all, or those named) need values for."""
        needed = self.tape.dependencies(self._output_nodes(self.select_outputs(outputs)))
        return [v for v in self.variables if needed[self.tape.variable_nodes[v]]]

    def _output_nodes(self, outputs: list[str]) -> list[int]:
        return [self.tape.output_node(o) for o in outputs]

    def _bind(self, point: Mapping, output_nodes: list[int], batch=None):
        """Arrays (B or 1, *shape) for every variable the outputs need; B; whether batched;
        which names are batched; each variable's shape.

        `batch`: None, as in v1 (numbers, or 1-D arrays of B points: scalar variables
        only); False, one point (every value is the variable's value, any shape); True,
        every array has the points first (numbers are shared); or a collection of the
        names whose values have the points first (the others shared)."""
        needed = self.tape.dependencies(output_nodes)
        env, shapes, batched_names = {}, {}, set()
        size = None
        for name in self.variables:
            if name not in point:
                if needed[self.tape.variable_nodes[name]]:
                    node = self.tape.nodes[self.tape.variable_nodes[name]]
                    raise JacliError(f"no value for variable '{shorten(name)}'", node.span,
                                     self.source, hint=f"give it a value, e.g. --at "
                                     f"{name if len(name) <= 40 else 'NAME'}=1")
                continue
            value = _floats(point[name], name)
            if batch is None:
                if value.ndim > 1:
                    raise JacliError(f"the values of '{name}' must be a number or a 1-D "
                                     "array (for array values pass batch=False for one "
                                     "point, or batch=True with the points first)")
                is_batched = value.ndim == 1
            elif batch is False:
                is_batched = False
            else:
                is_batched = value.ndim > 0 and (batch is True or name in batch)
            if is_batched:
                if size is not None and len(value) != size:
                    raise JacliError(f"'{name}' has {len(value)} values, others {size}")
                size = len(value)
                batched_names.add(name)
                env[name], shapes[name] = value, value.shape[1:]
            else:
                env[name], shapes[name] = value[None], value.shape
        count = 1 if size is None else size
        if batch is None:   # v1: numbers are spread over the points
            for name, value in env.items():
                if name not in batched_names:
                    env[name] = np.full(count, value[0])
                    batched_names.add(name)
        return env, count, size is not None, batched_names, shapes

    def shapes(self, point: Mapping, batch=None) -> dict[str, tuple]:
        """Every variable's shape at `point` and every output's (in that order)."""
        env, _, _, _, shapes = self._bind(point, self._output_nodes(self.outputs), batch)
        static = self._shape_pass(shapes)
        out = dict(shapes)
        for name, node in zip(self.tape.outputs, self.tape.output_nodes):
            out.setdefault(name, static[node] if static is not None else ())
        return out

    def _shape_pass(self, variable_shapes: dict[str, tuple]) -> list[tuple] | None:
        """The static shapes of every node (and the tape set to track them), or None for a
        scalar program at scalar values (nothing to check: every shape is ())."""
        if not self._arrays and all(s == () for s in variable_shapes.values()):
            self.tape.shapes = None
            return None
        shapes = infer_shapes(self.tape, variable_shapes)
        self.tape.set_shapes(variable_shapes, shapes)
        return shapes

    # --- evaluating --------------------------------------------------------------------
    def _run(self, kind: str, point: Mapping, outputs, wrt, progress=None, mode="reverse",
             seed=None, batch=None, one_element=False) -> Result:
        """Evaluate in chunks of CHUNK points; `kind` is eval, jacobian, jvp, vjp or hessian."""
        outputs = self.select_outputs(outputs)
        inputs = self.select_inputs(wrt, outputs)
        output_nodes = self._output_nodes(outputs)
        env, batch_size, batched, batched_names, var_shapes = self._bind(
            point, output_nodes, batch)
        static = self._shape_pass(var_shapes)
        out_shapes = [static[node] if static is not None else () for node in output_nodes]
        if (one_element or kind == "hessian") and static is not None:
            require_scalar_output(self.tape, static, outputs[0],
                                  "hess" if kind == "hessian" else "grad")
        in_shapes = [var_shapes.get(name, ()) for name in inputs]
        m = sum(int(np.prod(s, dtype=np.int64)) for s in out_shapes)
        n = sum(int(np.prod(s, dtype=np.int64)) for s in in_shapes)
        shapes = {"eval": {"value": (m,)},
                  "jacobian": {"value": (m,), "jacobian": (m, n)},
                  "jvp": {"value": (m,), "jvp": (m,)},
                  "vjp": {"value": (m,), "vjp": (n,)},
                  "hessian": {"value": (m,), "jacobian": (m, n), "hessian": (n, n)}}[kind]
        # a Jacobian's zeros: the engine writes into it, chunk by chunk
        arrays = {key: (np.zeros if kind == key == "jacobian" else np.empty)(
            (batch_size,) + shape) for key, shape in shapes.items()}
        tape, nodes = self.tape, output_nodes
        if kind == "hessian":
            tape, gradient_nodes, origins = gradient_tape(self.tape, output_nodes[0], inputs)
            nodes = output_nodes + gradient_nodes
        if kind == "jacobian" and mode == "auto":
            mode = "forward" if n < m else "reverse"
        seeds, seed_batched = {}, set()
        if seed is not None:   # tangents per variable, cotangents per output: as the point
            seed_shapes = dict(zip(outputs, out_shapes)) if kind == "vjp" else var_shapes
            for key, v in seed.items():
                v = _floats(v, key)
                lead = v.ndim > len(seed_shapes.get(key, ()))
                if batch is None and v.ndim == 0:
                    v = v[None]
                elif not lead:
                    v = v[None]
                else:
                    seed_batched.add(key)
                expected = tuple(seed_shapes.get(key, ()))
                if static is not None and batch is not None and v.shape[1:] != expected:
                    what = "cotangent" if kind == "vjp" else "tangent"
                    raise JacliError(f"the {what} of '{shorten(key)}' has shape "
                                     f"{v.shape[1:]}; '{shorten(key)}' has shape {expected}",
                                     origin="--" + what)
                seeds[key] = v
        log = WarningLog()
        # The engine holds a chunk's derivatives at once: (m, n) per point, (n + 1, n)
        # for the Hessian, so wide ones get fewer points (200 inputs: 104 per chunk).
        width = {"jacobian": m * n, "hessian": (n + 1) * n}.get(kind, m)
        floats = JACOBIAN_FLOATS if kind == "jacobian" else CHUNK_FLOATS
        chunk_points = max(1, min(CHUNK, floats // max(1, width)))
        if kind == "hessian":   # the gradient's nodes warn as the derivative they compute
            log.origins = origins
        with paused_gc():
            for start in range(0, batch_size, chunk_points):
                stop = min(start + chunk_points, batch_size)
                size = stop - start
                chunk = {name: v[start:stop] if name in batched_names else v
                         for name, v in env.items()}
                chunk_seed = {k: v[start:stop] if k in seed_batched else v
                              for k, v in seeds.items()}
                if kind in ("eval", "jacobian"):
                    sweep = evaluate(tape, chunk, size, nodes,
                                     inputs if kind == "jacobian" else None, log, mode=mode,
                                     out=arrays["jacobian"][start:stop]
                                     if kind == "jacobian" else None)
                    arrays["value"][start:stop] = sweep.outputs
                elif kind == "jvp":
                    arrays["value"][start:stop], arrays["jvp"][start:stop] = engine_jvp(
                        tape, chunk, size, nodes, chunk_seed, log)
                elif kind == "vjp":
                    arrays["value"][start:stop], arrays["vjp"][start:stop] = engine_vjp(
                        tape, chunk, size, nodes, [chunk_seed.get(o, 0.0) for o in outputs],
                        inputs, log)
                else:
                    sweep = evaluate(tape, chunk, size, nodes, inputs, log)
                    arrays["value"][start:stop] = sweep.outputs[:, :1]
                    arrays["jacobian"][start:stop, 0] = sweep.outputs[:, 1:]
                    arrays["hessian"][start:stop] = sweep.jacobian[:, 1:]
                if progress is not None and batch_size > CHUNK:
                    progress(stop, batch_size)
        at = {name: (v if name in batched_names else v[0]) for name, v in env.items()}
        if not batched:  # one point (or the program has no variables)
            arrays = {key: a[0] for key, a in arrays.items()}
            at = {name: (v[0] if name in batched_names else v) for name, v in at.items()}
        all_shapes = dict(var_shapes)
        for name, shape in zip(outputs, out_shapes):
            all_shapes.setdefault(name, shape)
        return Result(inputs, outputs, at, arrays["value"], arrays.get("jacobian"),
                      log.warnings, jvp=arrays.get("jvp"), vjp=arrays.get("vjp"),
                      hessian=arrays.get("hessian"), shapes=all_shapes)

    def _one_output(self, output: str | None, command: str) -> list[str] | None:
        if output is None and len(self.tape.outputs) != 1:
            raise JacliError(f"{command} needs one scalar output, and the program has "
                             f"{len(self.tape.outputs)} ({', '.join(self.tape.outputs)}): "
                             "choose one with --out", origin="--out")
        return [output] if output else None

    def eval(self, point: Mapping, outputs: Sequence[str] | None = None,
             progress=None, batch=None) -> Result:
        """Values of the outputs (all, or those named) at `point`.
        `progress(done, total)`, if given, is called after each chunk of points."""
        return self._run("eval", point, outputs, None, progress, batch=batch)

    def jacobian(self, point: Mapping, wrt: Sequence[str] | None = None,
                 outputs: Sequence[str] | None = None, progress=None,
                 mode: str = "reverse", batch=None) -> Result:
        """Values and the Jacobian d outputs / d wrt (default: every variable).
        `mode`: "reverse" (a sweep per output), "forward" (a sweep per input) or "auto"
        (forward when there are fewer inputs than outputs)."""
        if mode not in ("reverse", "forward", "auto"):
            raise JacliError(f"unknown mode {mode!r}: reverse, forward or auto", origin="--mode")
        return self._run("jacobian", point, outputs, wrt, progress, mode, batch=batch)

    def grad(self, point: Mapping, wrt: Sequence[str] | None = None,
             output: str | None = None, progress=None, batch=None) -> Result:
        """Value and gradient of one scalar output (the only one, or `output`)."""
        return self._run("jacobian", point, self._one_output(output, "grad"), wrt, progress,
                         batch=batch, one_element=True)

    def jvp(self, point: Mapping, tangent: Mapping, outputs: Sequence[str] | None = None,
            progress=None, batch=None) -> Result:
        """Forward mode: values and J.v, `tangent` giving v per variable (others 0)."""
        self._check_names(tangent, self.variables, "a variable", "--tangent")
        return self._run("jvp", point, outputs, [v for v in self.variables if v in tangent],
                         progress, seed=tangent, batch=batch)

    def vjp(self, point: Mapping, cotangent: Mapping, wrt: Sequence[str] | None = None,
            outputs: Sequence[str] | None = None, progress=None, batch=None) -> Result:
        """Reverse mode: values and u^T.J, `cotangent` giving u per output (others 0)."""
        self._check_names(cotangent, self.select_outputs(outputs), "an output", "--cotangent")
        return self._run("vjp", point, outputs, wrt, progress, seed=cotangent, batch=batch)

    def hessian(self, point: Mapping, wrt: Sequence[str] | None = None,
                output: str | None = None, progress=None, batch=None) -> Result:
        """Value, gradient and the exact n x n Hessian of one scalar output
        (reverse over reverse: the gradient is built as tape nodes, then differentiated)."""
        return self._run("hessian", point, self._one_output(output, "hess"), wrt, progress,
                         batch=batch)

    @staticmethod
    def _check_names(given, known: list[str], what: str, origin: str) -> None:
        """Every name in `given` is among `known`, or a JacliError naming the first that is not."""
        members = set(known)
        for name in given:
            if name not in members:
                kind = what.split()[-1] + "s"          # "a variable" -> "variables"
                raise JacliError(f"'{shorten(name)}' is not {what} of the program "
                                 f"(its {kind}: {shorten(', '.join(known), 200) or 'none'})",
                                 origin=origin)

    def trace(self, point: Mapping, wrt: Sequence[str] | None = None,
              outputs: Sequence[str] | None = None, batch=None) -> Trace:
        """The tape at one point: every entry's value, local partials and adjoints."""
        outputs = self.select_outputs(outputs)
        inputs = self.select_inputs(wrt, outputs)
        output_nodes = self._output_nodes(outputs)
        env, batch, batched, _, shapes = self._bind(point, output_nodes, batch)
        if batched and batch != 1:
            raise JacliError("the tape is shown at one point at a time")
        self._shape_pass(shapes)
        env = {name: v[:1] for name, v in env.items()}
        log = WarningLog()
        sweep = evaluate(self.tape, env, 1, output_nodes, inputs, log, keep=True)
        scalar = _first
        partials: Partials = sweep.partials
        return Trace(self.tape, inputs, outputs, output_nodes,
                     [scalar(v) for v in sweep.values],
                     {key: scalar(v) for key, v in partials.cache.items()},
                     [[scalar(a) for a in adjoints] for adjoints in sweep.adjoints],
                     sweep.jacobian[0], log.warnings)


def components(name: str, shape: tuple) -> list[str]:
    """Component names, row-major: `x` for a scalar, x[0], x[1], W[1][2], ... else."""
    if not shape:
        return [name]
    return [name + "".join(f"[{i}]" for i in index) for index in np.ndindex(*shape)]


def _floats(value, name: str) -> np.ndarray:
    """A value (a number, a NumPy array or nested lists) as an array of doubles."""
    try:
        return np.asarray(value, dtype=float)
    except (ValueError, TypeError):
        raise JacliError(f"the value of '{shorten(name)}' is not an array of numbers "
                         "(a ragged list?)") from None


def _first(value) -> float | None:
    if value is None:
        return None
    return float(np.asarray(value).reshape(-1)[0])

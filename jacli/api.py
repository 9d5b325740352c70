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

from .engine import (DomainWarning, Partials, WarningLog, compressed, evaluate,
                     recorded_sweep, summed_vjp)
from .engine import jvp as engine_jvp
from .engine import vjp as engine_vjp
from .errors import JacliError, shorten
from .parse import parse
from .symbolic import gradient_tape
from .prims import PRIMITIVES, static_shape
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
    hvp: np.ndarray | None = None        # (B, n): H.v
    #: with sparse=True: the structural pattern (sparsity.Sparsity, COO over components)
    #: and the values at its nonzeros, (B, nnz), in place of `jacobian` (or `hessian`)
    sparsity: object | None = None
    nonzeros: np.ndarray | None = None
    #: with reduce="sum" or "mean": the number of points summed (the results have no
    #: batch axis)
    rows: int | None = None

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
    """One point's pass through the tape, for showing how the Jacobian is built.

    In a run of arrays (`shapes` not None) values, partials, adjoints and contributions
    are arrays of their entries' shapes (a float for shape ()); in a scalar run numbers."""
    tape: Tape
    inputs: list[str]
    outputs: list[str]
    output_nodes: list[int]
    values: list[float | None]                        # per node
    partials: dict[tuple[int, int], float]            # (node, argument position) -> value
    adjoints: list[list[float | None]]                # per output component, per node
    jacobian: np.ndarray                              # (m, n) over components
    warnings: list[DomainWarning]
    shapes: list[tuple] | None = None                 # per node; None in a scalar run
    output_components: list[str] | None = None        # y[0], y[1], ... (m)
    input_components: list[str] | None = None         # x[0], W[1][2], ... (n)
    # per output component: (node, argument position) -> the contribution sent (arrays)
    contributions: list[dict] | None = None


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

    def _bind(self, point: Mapping, output_nodes: list[int], batch=None, spread=True):
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
        if batch is None and spread:   # v1: numbers are spread over the points
            for name, value in env.items():
                if name not in batched_names:
                    env[name] = np.full(count, value[0])
                    batched_names.add(name)
        return env, count, size is not None, batched_names, shapes

    def shapes(self, point: Mapping, batch=None) -> dict[str, tuple]:
        """Every variable's shape at `point` and every output's (in that order)."""
        output_nodes = self._output_nodes(self.outputs)
        env, _, _, _, shapes = self._bind(point, output_nodes, batch)
        static = self._shape_pass(shapes, output_nodes)
        out = dict(shapes)
        for name, node in zip(self.tape.outputs, self.tape.output_nodes):
            out.setdefault(name, static[node] if static is not None else ())
        return out

    def _shape_pass(self, variable_shapes: dict[str, tuple],
                    output_nodes: list[int] | None = None) -> list[tuple] | None:
        """The static shapes of the nodes `output_nodes` need (None for the others; the
        tape set to track them), or None for a scalar program at scalar values (nothing to
        check: every shape is ())."""
        if not self._arrays and all(s == () for s in variable_shapes.values()):
            self.tape.shapes = None
            return None
        needed = None if output_nodes is None else self.tape.dependencies(output_nodes)
        shapes = infer_shapes(self.tape, variable_shapes, needed)
        self.tape.set_shapes(variable_shapes, shapes)
        return shapes

    # --- evaluating --------------------------------------------------------------------
    def _run(self, kind: str, point: Mapping, outputs, wrt, progress=None, mode="reverse",
             seed=None, batch=None, one_element=False, colour=True,
             sparse=False, reduce=None) -> Result:
        """Evaluate in chunks of CHUNK points; `kind` is eval, jacobian, jvp, vjp, hessian or
        hvp. `sparse`: the Jacobian's (Hessian's) structural nonzeros instead of the
        matrix. With `reduce` ("sum" or "mean") the results are summed over the points."""
        if reduce not in (None, "sum", "mean"):
            raise JacliError(f"unknown reduction {reduce!r}: sum or mean", origin="--reduce")
        mode_given = mode if kind == "jacobian" else None
        outputs = self.select_outputs(outputs)
        inputs = self.select_inputs(wrt, outputs)
        output_nodes = self._output_nodes(outputs)
        env, batch_size, batched, batched_names, var_shapes = self._bind(
            point, output_nodes, batch, spread=reduce is None)   # reduced: shared stay one
        static = self._shape_pass(var_shapes, output_nodes)
        out_shapes = [static[node] if static is not None else () for node in output_nodes]
        if (one_element or kind in ("hessian", "hvp")) and static is not None:
            require_scalar_output(self.tape, static, outputs[0],
                                  {"hessian": "hess", "hvp": "hvp"}.get(kind, "grad"))
        in_shapes = [var_shapes.get(name, ()) for name in inputs]
        m = sum(int(np.prod(s, dtype=np.int64)) for s in out_shapes)
        n = sum(int(np.prod(s, dtype=np.int64)) for s in in_shapes)
        shapes = {"eval": {"value": (m,)},
                  "jacobian": {"value": (m,), "jacobian": (m, n)},
                  "jvp": {"value": (m,), "jvp": (m,)},
                  "vjp": {"value": (m,), "vjp": (n,)},
                  "hessian": {"value": (m,), "jacobian": (m, n), "hessian": (n, n)},
                  "hvp": {"value": (m,), "jacobian": (m, n), "hvp": (n,)}}[kind]
        tape, nodes = self.tape, output_nodes
        if kind in ("hessian", "hvp"):
            tape, gradient_nodes, origins = gradient_tape(self.tape, output_nodes[0], inputs)
            nodes = output_nodes + gradient_nodes
        # The pattern and colouring of a sparse Jacobian or Hessian: the colours are used
        # when they are fewer sweeps than the dense mode's (auto mode, programs of arrays)
        pattern, colouring = None, None
        if kind == "jacobian" and mode == "auto":
            mode = "forward" if n < m else "reverse"
        if sparse or (colour and static is not None and (
                kind == "hessian" or (kind == "jacobian" and mode_given == "auto"))):
            pattern, colouring = self._structure(tape, gradient_nodes if kind == "hessian"
                                                 else nodes, inputs, in_shapes,
                                                 kind == "hessian")
            dense = n if kind == "hessian" else min(m, n)
            if not colour or static is None or mode_given not in ("auto", None) \
                    or colouring.count >= dense:
                colouring = None
        full = "hessian" if kind == "hessian" else "jacobian"
        if sparse:   # the nonzeros in the pattern's order, not the dense matrix
            shapes = {key: s for key, s in shapes.items() if key != full}
            shapes["nonzeros"] = (pattern.nnz,)
        # (zeros for a compressed Jacobian: its structural zeros are never written, and
        # calloc's zero pages cost nothing until touched)
        # (and a Jacobian's: the engine writes its nonzeros into it, chunk by chunk)
        arrays = {key: (np.zeros if colouring is not None or kind == key == "jacobian"
                        else np.empty)((batch_size,) + shape) for key, shape in shapes.items()}
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
        # Summed, a chunk holds no per-point derivatives: 4x the points, a quarter of the
        # sweeps (their fixed cost is much of a small network's time).
        floats = JACOBIAN_FLOATS if kind == "jacobian" else CHUNK_FLOATS
        chunk_points = max(1, min(CHUNK if reduce is None else 4 * CHUNK,
                                  floats // max(1, width)))
        if kind in ("hessian", "hvp"):   # the gradient's nodes warn as the derivative they compute
            log.origins = origins
        if reduce is not None:
            return self._reduced(kind, reduce, env, batch_size, batched_names, var_shapes,
                                 outputs, out_shapes, inputs, in_shapes, tape, nodes, seeds,
                                 seed_batched, log, chunk_points, progress)
        with paused_gc():
            for start, stop, chunk, chunk_seed in _point_chunks(
                    env, batched_names, seeds, seed_batched, batch_size, chunk_points):
                size = stop - start
                if colouring is not None:
                    self._run_compressed(kind, pattern, colouring, tape, chunk, size, nodes,
                                         inputs, log,
                                         {k: a[start:stop] for k, a in arrays.items()})
                elif kind in ("eval", "jacobian"):
                    sweep = evaluate(tape, chunk, size, nodes,
                                     inputs if kind == "jacobian" else None, log, mode=mode,
                                     out=arrays["jacobian"][start:stop]
                                     if kind == "jacobian" and not sparse else None)
                    arrays["value"][start:stop] = sweep.outputs
                    if kind == "jacobian" and sparse:
                        arrays["nonzeros"][start:stop] = sweep.jacobian[:, pattern.rows,
                                                                        pattern.cols]
                elif kind == "jvp":
                    arrays["value"][start:stop], arrays["jvp"][start:stop] = engine_jvp(
                        tape, chunk, size, nodes, chunk_seed, log)
                elif kind == "vjp":
                    arrays["value"][start:stop], arrays["vjp"][start:stop] = engine_vjp(
                        tape, chunk, size, nodes, [chunk_seed.get(o, 0.0) for o in outputs],
                        inputs, log)
                elif kind == "hvp":   # forward over reverse: J.v of the gradient's nodes
                    values, directional = engine_jvp(tape, chunk, size, nodes, chunk_seed, log)
                    arrays["value"][start:stop] = values[:, :1]
                    arrays["jacobian"][start:stop, 0] = values[:, 1:]
                    arrays["hvp"][start:stop] = directional[:, 1:]
                else:
                    sweep = evaluate(tape, chunk, size, nodes, inputs, log)
                    arrays["value"][start:stop] = sweep.outputs[:, :1]
                    arrays["jacobian"][start:stop, 0] = sweep.outputs[:, 1:]
                    if sparse:
                        arrays["nonzeros"][start:stop] = sweep.jacobian[:, 1 + pattern.rows,
                                                                        pattern.cols]
                    else:
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
                      hessian=arrays.get("hessian"), shapes=all_shapes, hvp=arrays.get("hvp"),
                      sparsity=pattern if sparse else None, nonzeros=arrays.get("nonzeros"))

    def _structure(self, tape: Tape, nodes: list[int], inputs: list[str], in_shapes: list,
                   hessian: bool = False):
        """(pattern, colouring) of the Jacobian of `nodes` (a Hessian's: of the gradient's
        nodes). Remembered per nodes, inputs and shapes: every chunk of points and every
        call at points of the same shapes shares them."""
        from .colouring import hessian_colouring, jacobian_colouring
        from .sparsity import jacobian_pattern

        key = (hessian, tuple(nodes), tuple(inputs), len(tape.nodes),
               tuple(sorted(tape.variable_shapes.items())))
        remembered = self.__dict__.setdefault("_structures", {})
        if key not in remembered:
            pattern = jacobian_pattern(tape, nodes, inputs, in_shapes)
            colouring = (hessian_colouring if hessian else jacobian_colouring)(pattern)
            remembered[key] = (pattern, colouring)
        return remembered[key]

    def sparsity(self, shapes: Mapping[str, tuple] | None = None,
                 wrt: Sequence[str] | None = None, outputs: Sequence[str] | None = None,
                 hessian: bool = False) -> "Structure":
        """The structural nonzero pattern of the Jacobian (or, with `hessian`, of one
        scalar output's Hessian) for variables of `shapes` (others scalars): no values
        needed. With its colourings' counts (colouring.py)."""
        from .colouring import colourings, hessian_colouring
        from .sparsity import jacobian_pattern

        outputs = self.select_outputs(outputs if not hessian else
                                      self._one_output(outputs[0] if outputs else None,
                                                       "sparsity --hessian"))
        inputs = self.select_inputs(wrt, outputs)
        shapes = {name: tuple(s) for name, s in (shapes or {}).items()}
        static = self._shape_pass(shapes)
        in_shapes = [shapes.get(name, ()) for name in inputs]
        nodes = self._output_nodes(outputs)
        if hessian:
            if static is not None:
                require_scalar_output(self.tape, static, outputs[0], "sparsity --hessian")
            tape, gradient_nodes, _ = gradient_tape(self.tape, nodes[0], inputs)
            pattern = jacobian_pattern(tape, gradient_nodes, inputs, in_shapes)
        else:
            pattern = jacobian_pattern(self.tape, nodes, inputs, in_shapes)
        forward, reverse = colourings(pattern)
        cols = [c for name, s in zip(inputs, in_shapes) for c in components(name, s)]
        rows = cols if hessian else [
            c for name, node in zip(outputs, nodes)
            for c in components(name, static[node] if static is not None else ())]
        return Structure(pattern, rows, cols, forward.count, reverse.count,
                         hessian_colouring(pattern).count if hessian else None)

    @staticmethod
    def _run_compressed(kind, pattern, colouring, tape, env, size, nodes, inputs, log,
                        arrays):
        """One chunk of a Jacobian or Hessian from the compressed sweeps (`arrays`: the
        chunk's rows of the results, filled in place)."""
        outputs, nonzeros = compressed(tape, env, size, nodes, inputs, log, pattern,
                                       colouring, skip_first=kind == "hessian")
        full = "jacobian"
        if kind == "hessian":
            arrays["value"][:] = outputs[:, :1]
            arrays["jacobian"][:, 0] = outputs[:, 1:]
            full = "hessian"
        else:
            arrays["value"][:] = outputs
        if "nonzeros" in arrays:
            arrays["nonzeros"][:] = nonzeros
        else:   # (the arrays are zeros: api._run)
            arrays[full][:, pattern.rows, pattern.cols] = nonzeros

    def _reduced(self, kind, reduce, env, batch_size, batched_names, var_shapes, outputs,
                 out_shapes, inputs, in_shapes, tape, nodes, seeds, seed_batched, log,
                 chunk_points, progress) -> Result:
        """`_run` summed (or averaged) over the points: per chunk, one sweep whose
        adjoints of shared values are summed over the chunk's points (engine.summed_vjp;
        a forward sweep for jvp), the chunks' sums added with compensation."""
        totals: dict[str, CompensatedSum] = {}
        with paused_gc():
            for start, stop, chunk, chunk_seed in _point_chunks(
                    env, batched_names, seeds, seed_batched, batch_size, chunk_points,
                    at_least_once=True):
                size = stop - start
                sums = _chunk_sums(kind, tape, chunk, size, nodes, outputs, out_shapes,
                                   inputs, in_shapes, chunk_seed, log)
                for key, value in sums.items():
                    totals.setdefault(key, CompensatedSum()).add(value)
                if progress is not None and batch_size > CHUNK:
                    progress(stop, batch_size)
        arrays = {key: total.value() for key, total in totals.items()}
        if reduce == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):   # no points: nan
                arrays = {key: a / batch_size for key, a in arrays.items()}
        at = {name: v[0] for name, v in env.items() if name not in batched_names}
        all_shapes = dict(var_shapes)
        for name, shape in zip(outputs, out_shapes):
            all_shapes.setdefault(name, shape)
        return Result(inputs, outputs, at, arrays["value"], arrays.get("jacobian"),
                      log.warnings, jvp=arrays.get("jvp"), vjp=arrays.get("vjp"),
                      hessian=arrays.get("hessian"), shapes=all_shapes, rows=batch_size)

    def _one_output(self, output: str | None, command: str) -> list[str] | None:
        if output is None and len(self.tape.outputs) != 1:
            raise JacliError(f"{command} needs one scalar output, and the program has "
                             f"{len(self.tape.outputs)} ({', '.join(self.tape.outputs)}): "
                             "choose one with --out", origin="--out")
        return [output] if output else None

    def eval(self, point: Mapping, outputs: Sequence[str] | None = None,
             progress=None, batch=None, reduce: str | None = None) -> Result:
        """Values of the outputs (all, or those named) at `point`.
        `progress(done, total)`, if given, is called after each chunk of points."""
        return self._run("eval", point, outputs, None, progress, batch=batch, reduce=reduce)

    def jacobian(self, point: Mapping, wrt: Sequence[str] | None = None,
                 outputs: Sequence[str] | None = None, progress=None,
                 mode: str = "reverse", batch=None, colour: bool = True,
                 sparse: bool = False, reduce: str | None = None) -> Result:
        """Values and the Jacobian d outputs / d wrt (default: every variable).
        `mode`: "reverse" (a sweep per output), "forward" (a sweep per input) or "auto"
        (forward when there are fewer inputs than outputs; for a program of arrays, with
        `colour`, one sweep per colour of the sparsity pattern's columns or rows
        whenever that is fewer: colouring.py). `sparse`: `sparsity` and `nonzeros`
        (B, nnz) in the result instead of `jacobian`."""
        if mode not in ("reverse", "forward", "auto"):
            raise JacliError(f"unknown mode {mode!r}: reverse, forward or auto", origin="--mode")
        return self._run("jacobian", point, outputs, wrt, progress, mode, batch=batch,
                         colour=colour, sparse=sparse, reduce=reduce)

    def grad(self, point: Mapping, wrt: Sequence[str] | None = None,
             output: str | None = None, progress=None, batch=None,
             reduce: str | None = None) -> Result:
        """Value and gradient of one scalar output (the only one, or `output`).
        `reduce="sum"` or `"mean"`: their sum or mean over the points instead (one
        reverse sweep per chunk of points; `Result.rows` counts the points)."""
        return self._run("jacobian", point, self._one_output(output, "grad"), wrt, progress,
                         batch=batch, one_element=True, reduce=reduce)

    def jvp(self, point: Mapping, tangent: Mapping, outputs: Sequence[str] | None = None,
            progress=None, batch=None, reduce: str | None = None) -> Result:
        """Forward mode: values and J.v, `tangent` giving v per variable (others 0)."""
        self._check_names(tangent, self.variables, "a variable", "--tangent")
        return self._run("jvp", point, outputs, [v for v in self.variables if v in tangent],
                         progress, seed=tangent, batch=batch, reduce=reduce)

    def vjp(self, point: Mapping, cotangent: Mapping, wrt: Sequence[str] | None = None,
            outputs: Sequence[str] | None = None, progress=None, batch=None,
            reduce: str | None = None) -> Result:
        """Reverse mode: values and u^T.J, `cotangent` giving u per output (others 0)."""
        self._check_names(cotangent, self.select_outputs(outputs), "an output", "--cotangent")
        return self._run("vjp", point, outputs, wrt, progress, seed=cotangent, batch=batch,
                         reduce=reduce)

    def hessian(self, point: Mapping, wrt: Sequence[str] | None = None,
                output: str | None = None, progress=None, batch=None,
                colour: bool = True, sparse: bool = False,
                reduce: str | None = None) -> Result:
        """Value, gradient and the exact n x n Hessian of one scalar output
        (reverse over reverse: the gradient is built as tape nodes, then differentiated;
        for a program of arrays, with `colour`, one reverse sweep per colour of the
        Hessian's sparsity pattern whenever that is fewer than n: colouring.py).
        `sparse`: `sparsity` and `nonzeros` (B, nnz) in the result instead of `hessian`."""
        return self._run("hessian", point, self._one_output(output, "hess"), wrt, progress,
                         batch=batch, colour=colour, sparse=sparse, reduce=reduce)

    def stream(self, points: str, command: str = "eval", *, at: Mapping | None = None,
               wrt: Sequence[str] | None = None, outputs: Sequence[str] | None = None,
               shapes: Mapping | None = None, tangent: Mapping | None = None,
               cotangent: Mapping | None = None, mode: str = "auto",
               points_format: str | None = None, columns: Sequence[str] | None = None,
               allow_unused: bool = False, reduce: str | None = None):
        """`command` (eval, grad, jac, hess, jvp, vjp) at every row of the points file
        `points` (CSV, TSV, JSON Lines, .npy, .npz; '-' is standard input), read and
        evaluated chunk by chunk as `jacli COMMAND --points` does. `at` gives values every
        row shares. Returns a `jacli.batch.Batch`: iterate it for one `Report` per chunk
        (`.value` (B, m), `.jacobian` (B, m, n), `.hessian`, `.jvp`, `.vjp`, `.at`,
        `.bad_rows` (row in the chunk -> why; its results are nan), `.first_row`); its
        `.warnings` then holds the domain warnings met. With `reduce` ("sum" or "mean")
        it yields one Report: one row, the sum or mean over the good rows (`.rows` of
        them), computed chunk by chunk."""
        from .batch import STREAMED, Batch

        if command not in STREAMED:
            raise JacliError(f"unknown command {command!r}: one of {', '.join(STREAMED)}")
        return Batch(self, command, points, at=at, wrt=None if wrt is None else list(wrt),
                     outputs=None if outputs is None else list(outputs), shapes=shapes,
                     tangent=tangent, cotangent=cotangent, mode=mode,
                     points_format=points_format,
                     columns=None if columns is None else list(columns),
                     allow_unused=allow_unused, reduce=reduce)

    def chain(self, point: Mapping, wrt: Sequence[str] | None = None,
              outputs: Sequence[str] | None = None):
        """The chain of local Jacobians at one point: each statement's Jacobian with
        respect to what it uses directly, and accumulated with respect to the inputs
        (jacli.chain.Chain; its `jacobian` is the program's)."""
        from .chain import chain
        return chain(self, point, wrt, outputs)

    def hvp(self, point: Mapping, tangent: Mapping, wrt: Sequence[str] | None = None,
            output: str | None = None, progress=None, batch=None) -> Result:
        """Value, gradient and the Hessian-vector product H.v of one scalar output, by
        forward over reverse (the gradient built as tape nodes, then one forward sweep
        along v): H is never formed. `tangent` gives v per input (others 0)."""
        outputs = self._one_output(output, "hvp")
        inputs = self.select_inputs(wrt, outputs)
        self._check_names(tangent, inputs, "an input", "--tangent")
        return self._run("hvp", point, outputs, inputs, progress, seed=tangent, batch=batch)

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
        """The tape at one point: every entry's value, local partials and adjoints (per
        output component), and in a run of arrays every contribution sent. `batch` as
        for eval (False: array values at one point)."""
        outputs = self.select_outputs(outputs)
        inputs = self.select_inputs(wrt, outputs)
        output_nodes = self._output_nodes(outputs)
        env, batch, batched, _, shapes = self._bind(point, output_nodes, batch)
        if batched and batch != 1:
            raise JacliError("the tape is shown at one point at a time")
        static = self._shape_pass(shapes, output_nodes)
        env = {name: v[:1] for name, v in env.items()}
        log = WarningLog()
        sweep = evaluate(self.tape, env, 1, output_nodes, inputs, log, keep=True)
        partials: Partials = sweep.partials
        if static is None:   # every entry a number: as v1
            scalar = _first
            return Trace(self.tape, inputs, outputs, output_nodes,
                         [scalar(v) for v in sweep.values],
                         {key: scalar(v) for key, v in partials.cache.items()},
                         [[scalar(a) for a in adjoints] for adjoints in sweep.adjoints],
                         sweep.jacobian[0], log.warnings, None, list(outputs), list(inputs))
        # a run of arrays: one sweep per output over all its components, every
        # contribution kept (each adjoint is the sum of those it received)
        nodes = self.tape.nodes
        depends = self.tape.depends_on(inputs)
        adjoints, contributions = [], []
        for node in output_nodes:
            size = int(np.prod(static[node], dtype=np.int64))
            if not depends[node]:
                adjoints += [[None] * len(nodes) for _ in range(size)]
                contributions += [{} for _ in range(size)]
                continue
            swept, record = recorded_sweep(self.tape, partials, node, static[node], depends)
            for k in range(size):
                mine = [None if a is None else _row(a, k, static[i]) for i, a in enumerate(swept)]
                sent = {key: _row(c, k, static[nodes[key[0]].args[key[1]]])
                        for key, c in record.items()}
                for key, p in partials.cache.items():   # a symbolic 0 sends nothing: 0
                    entry, position = key
                    if key not in sent and mine[entry] is not None and type(p) is float:
                        sent[key] = _row(0.0, 0, static[nodes[entry].args[position]])
                adjoints.append(mine)
                contributions.append(sent)
        return Trace(self.tape, inputs, outputs, output_nodes,
                     [None if v is None else _row(v, 0, static[i])
                      for i, v in enumerate(sweep.values)],
                     {key: p if type(p) is float else _row(p, 0, static_shape(p))
                      for key, p in partials.cache.items()},
                     adjoints, sweep.jacobian[0], log.warnings, list(static),
                     [c for o, n in zip(outputs, output_nodes) for c in components(o, static[n])],
                     [c for name in inputs for c in components(name, tuple(shapes.get(name, ())))],
                     contributions)


class Structure(NamedTuple):
    """A Jacobian's (or Hessian's) structural nonzeros and what colouring saves."""
    pattern: object              # sparsity.Sparsity: COO rows, cols, shape (m, n)
    rows: list[str]              # the m rows' component names
    cols: list[str]              # the n columns'
    forward: int                 # forward sweeps with the columns coloured (n dense)
    reverse: int                 # reverse sweeps with the rows coloured (m dense)
    hessian: int | None = None   # a Hessian's sweeps (star or distance-2 colouring)


class CompensatedSum:
    """A running sum of arrays with Neumaier's compensation: each addition's rounding
    error is kept in `carry`, so a sum of many chunks is as if rounded once (a few ulps
    against math.fsum, however many chunks)."""

    def __init__(self):
        self.total = self.carry = None

    def add(self, value) -> None:
        value = np.array(value, dtype=float)
        if self.total is None:
            self.total, self.carry = value, np.zeros_like(value)
            return
        total = self.total + value
        with np.errstate(invalid="ignore"):   # inf - inf: no carry past an infinity
            error = np.where(np.abs(self.total) >= np.abs(value),
                             (self.total - total) + value, (value - total) + self.total)
        self.carry += np.where(np.isfinite(total), error, 0.0)
        self.total = total

    def value(self) -> np.ndarray:
        return self.total + self.carry


def column_sums(a: np.ndarray) -> np.ndarray:
    """The sums over the points (axis 0) of (B, ...), pairwise (error O(log B) ulps)."""
    return np.ascontiguousarray(np.moveaxis(a, 0, -1)).sum(axis=-1)


def _unit_cotangents(shapes: list[tuple]) -> list[np.ndarray]:
    """For nodes of these shapes, K = their components in all: the cotangent of each
    node, (K, 1, *shape), row k the unit vector of component k (zero at other nodes)."""
    sizes = [int(np.prod(shape, dtype=np.int64)) for shape in shapes]
    total, start, out = sum(sizes), 0, []
    for shape, size in zip(shapes, sizes):
        u = np.zeros((total, size))
        u[np.arange(start, start + size), np.arange(size)] = 1.0
        out.append(u.reshape((total, 1) + tuple(shape)))
        start += size
    return out


def _chunk_sums(kind, tape, chunk, size, nodes, outputs, out_shapes, inputs, in_shapes,
                seed, log) -> dict[str, np.ndarray]:
    """One chunk's results summed over its points, without a batch axis."""
    if kind == "eval":
        return {"value": column_sums(evaluate(tape, chunk, size, nodes, None, log).outputs)}
    if kind == "jvp":   # J.v per point is m numbers: summed as values are
        value, tangent = engine_jvp(tape, chunk, size, nodes, seed, log)
        return {"value": column_sums(value), "jvp": column_sums(tangent)}
    if kind == "vjp":
        cotangents = [None if o not in seed else np.asarray(seed[o], dtype=float)[None]
                      for o in outputs]
        value, sums = summed_vjp(tape, chunk, size, nodes, cotangents, inputs, log)
        return {"value": column_sums(value), "vjp": sums[0]}
    if kind == "hessian":   # the gradient's nodes, each seeded: d(sum of gradients)/d inputs
        cotangents = [None] + _unit_cotangents(in_shapes)
        value, sums = summed_vjp(tape, chunk, size, nodes, cotangents, inputs, log)
        totals = column_sums(value)
        return {"value": totals[:1], "jacobian": totals[None, 1:], "hessian": sums}
    value, sums = summed_vjp(tape, chunk, size, nodes, _unit_cotangents(out_shapes), inputs,
                             log)
    return {"value": column_sums(value), "jacobian": sums}


def _point_chunks(env: dict, batched_names, seeds: dict, seed_batched, count: int,
                  chunk_points: int, at_least_once: bool = False):
    """(start, stop, values, seeds) of each chunk of `count` points: the batched values
    and seeds cut to the chunk's rows, the shared ones whole. `at_least_once`: no points
    still make one (empty) chunk, as a reduction of no rows needs."""
    for start in range(0, max(count, 1) if at_least_once else count, chunk_points):
        stop = min(start + chunk_points, count)
        yield (start, stop,
               {name: v[start:stop] if name in batched_names else v for name, v in env.items()},
               {k: v[start:stop] if k in seed_batched else v for k, v in seeds.items()})


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


def _row(value, k: int, shape: tuple):
    """Row k of a value in the engine's layout (K, 1, *shape), as an array of `shape`
    (a float for shape ())."""
    value = np.asarray(value, dtype=float)
    lead = value.shape[:1] if value.ndim > len(shape) + 1 else (1,)
    row = np.array(np.broadcast_to(value, lead + (1,) + tuple(shape))[min(k, lead[0] - 1), 0])
    return float(row) if row.ndim == 0 else row


def _first(value) -> float | None:
    if value is None:
        return None
    return float(np.asarray(value).reshape(-1)[0])

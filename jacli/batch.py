"""The batch runner: a compiled program streamed over many points, chunk by chunk.

A `Batch` is a command (eval, grad, jac, hess, jvp, vjp) with its selections (outputs,
--wrt inputs), the values every point shares (--at), the shapes of variables no value
gives (--shape), a tangent or cotangent, and a points source (a CSV, TSV, JSON Lines,
.npy or .npz file, or '-' for standard input). Iterating it reads the points in chunks,
evaluates each chunk's good rows in one call of the API and yields one `formats.Report`
per chunk: bad rows keep their place (nan) and are named in `Report.bad_rows`. Memory is
bounded by the chunk. The command line and `Program.stream` both run their points here.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

import numpy as np

from .api import Program
from .errors import JacliError, shorten
from .formats import Report, Shapes
from .points import Points, PointsReader
from .prims import CONSTANTS, FUNCTIONS

#: The numbers that one chunk's results may hold (8 MiB of them: 64 MB).
RESULT_FLOATS = 1 << 23
#: Rows of the first chunk of array points, whose results tell the outputs' sizes.
FIRST_ROWS = 16
#: The commands a Batch streams (the command line's other commands only use its checks).
STREAMED = ("eval", "grad", "jac", "hess", "jvp", "vjp", "hvp")
#: The commands --reduce sums (hvp has no summed sweep).
REDUCED = ("eval", "grad", "jac", "hess", "jvp", "vjp")
#: The commands whose result is a derivative (tape shows its entries without one).
DIFFERENTIATING = ("grad", "jac", "hess", "jvp", "vjp", "hvp", "check", "diff", "chain")
#: The result arrays of each command besides `value`.
ARRAYS_OF = {"eval": (), "grad": ("jacobian",), "jac": ("jacobian",),
             "hess": ("jacobian", "hessian"), "jvp": ("jvp",), "vjp": ("vjp",),
             "hvp": ("jacobian", "hvp")}


class Batch:
    """`command` of `program` at every point of `points` (None: the one point of `at`).

    `at` maps variables to values every point shares (numbers or arrays); `shapes` the
    shapes of variables that no value gives; `tangent` (jvp) and `cotangent` (vjp) map
    variables or outputs to their seeds; `mode` is jac's: auto, forward or reverse.
    `points_format` (csv, tsv, ssv, jsonl, npy, npz) when the path's ending does not tell;
    `columns` names the columns of a file without a header row, or of an .npy's.
    Iterating yields one `Report` per chunk; `warnings` then holds the domain warnings."""

    def __init__(self, program: Program, command: str, points: str | None = None, *,
                 at: dict | None = None, wrt: list[str] | None = None,
                 outputs: list[str] | None = None, shapes: dict | None = None,
                 tangent: dict | None = None, cotangent: dict | None = None,
                 mode: str = "auto", points_format: str | None = None,
                 columns: list[str] | None = None, allow_unused: bool = False,
                 reduce: str | None = None):
        self.program, self.command, self.mode = program, command, mode
        #: "sum" or "mean": one result over all rows (see `reduction`); None: a row each
        self.reduce = reduce
        #: With `reduce`, once `reduction` has run: the one Report of the summed results.
        self.reduced: Report | None = None
        self.source = program.source
        #: The outputs' components (m), once a run of arrays has told them.
        self.output_components: int | None = None
        self._warnings: dict = {}   # (a dict: each warning once, in order)
        self.outputs = program.select_outputs(outputs)
        if command in ("grad", "hess", "hvp") and len(self.outputs) != 1:
            raise JacliError(f"{command} needs one scalar output, and there are "
                             f"{len(self.outputs)} ({', '.join(self.outputs)}): choose one "
                             "with --out, or use jac", origin="--out")
        if wrt is not None and not wrt:
            raise JacliError("no variable named: give --wrt x,y,...", origin="--wrt")
        self.inputs = program.select_inputs(wrt, self.outputs)
        if not self.inputs and command in DIFFERENTIATING:
            nothing_to_differentiate(program, self.outputs)
        self.at = dict(at or {})
        self.shapes = dict(shapes or {})
        check_shapes(self.shapes, self.at, program)
        unused = program.unused(self.at)
        for name in unused:
            if name in CONSTANTS or name in FUNCTIONS:
                kind = "constant" if name in CONSTANTS else "function"
                raise JacliError(f"'{name}' is a {kind}, not a variable: it cannot be given a "
                                 "value", origin="--at")
        if unused and not allow_unused:
            known = shorten(", ".join(program.variables), 200) or "none"
            raise JacliError(f"'{shorten(unused[0])}' is not used by the program "
                             f"(its variables: {known})",
                             origin="--at", hint="leave it out, or pass --allow-unused")
        seed_option = {"jvp": "tangent", "hvp": "tangent", "vjp": "cotangent"}.get(command)
        self.seed = {}
        if seed_option:  # the tangent v of J.v, or the cotangent u of u^T.J
            self.seed = cotangent if command == "vjp" else tangent
            if not self.seed:
                raise JacliError(f"{command} needs --{seed_option}, e.g. --{seed_option} "
                                 f"{(self.outputs if command == 'vjp' else self.inputs)[0]}=1",
                                 origin=f"--{seed_option}")
        if reduce is not None:
            if reduce not in ("sum", "mean"):
                raise JacliError(f"unknown reduction {reduce!r}: sum or mean",
                                 origin="--reduce")
            if command not in REDUCED:
                raise JacliError(f"`{command}` does not take --reduce", origin="--reduce")
            if not points:
                raise JacliError("--reduce sums over the rows of --points: give --points",
                                 origin="--reduce")
        self.reader = None
        if points:
            required = [v for v in program.needed_variables(self.outputs) if v not in self.at]
            from .components import all_component_names

            npy_columns = all_component_names(self.shapes, [v for v in self.inputs
                                                            if v not in self.at])
            self.reader = PointsReader(points, points_format, program.variables, required,
                                       npy_columns, columns, shared=list(self.at),
                                       shapes=self.shapes)

    def __iter__(self) -> Iterator[Report]:
        if self.reduce is not None:
            for _, warnings in self.reduction():
                for warning in warnings:
                    self._warnings.setdefault(warning, None)
            yield self.reduced
            return
        for report, warnings in self.reports():
            for warning in warnings:
                self._warnings.setdefault(warning, None)
            yield report

    @property
    def warnings(self) -> list:
        """The domain warnings of the chunks read so far, each once."""
        return list(self._warnings)

    # --- the points, chunk by chunk ----------------------------------------------------
    def chunks(self) -> Iterator[Points | None]:
        """The points in chunks (None: the single point of --at), each small enough that
        its results stay within RESULT_FLOATS numbers (a Hessian has n^2 per row)."""
        if self.reader is None:
            yield None
            return
        rows = self._rows(len(self.outputs), len(self.inputs))
        for points in self.reader.chunks():
            if not self.has_arrays(points.columns) and not self.given_arrays():
                yield from points.split(rows)
                continue
            # m and n count components: n from the values' shapes; m from the outputs'
            # shapes, which the first few rows' results tell.
            while True:   # (an empty chunk too: a CSV header is written for it)
                n = sum(int(np.prod(self._shape_of(name, points))) for name in self.inputs)
                m = self.output_components
                size = self._rows(m or len(self.outputs), n)
                if m is None:
                    size = min(size, FIRST_ROWS)
                head, points = points.cut(size)
                yield head
                if not points.count:
                    break

    def _rows(self, m: int, n: int) -> int:
        """Rows per chunk for m outputs and n inputs (components)."""
        width = 1 + m + {"jac": m * n, "grad": n, "hess": n + n * n, "vjp": n, "hvp": 2 * n,
                         "jvp": m, "check": 8 * m * n}.get(self.command, 0)
        return max(1, RESULT_FLOATS // width)

    def _shape_of(self, name: str, points: Points) -> tuple[int, ...]:
        if name in points.columns:
            return points.columns[name].shape[1:]
        if name in self.at:
            return np.shape(self.at[name])
        return tuple(self.shapes.get(name, ()))

    def bindings(self, points: Points | None) -> tuple[dict[str, np.ndarray],
                                                      np.ndarray | None, int]:
        """The good rows' values of every variable, the good-row mask (None when every
        row is good) and the row count."""
        if points is None:
            return {n: np.array([v]) for n, v in self.at.items()}, None, 1
        columns = {n: c for n, c in points.columns.items() if n in self.program.variables}
        mask, good = None, points.count
        if points.bad_rows:
            mask = points.good_mask()
            columns = {n: c[mask] for n, c in columns.items()}
            good = int(mask.sum())
        columns.update({n: np.full(good, v) if np.ndim(v) == 0 else
                        np.broadcast_to(v, (good,) + np.shape(v)) for n, v in self.at.items()})
        return columns, mask, points.count

    def has_arrays(self, values: dict) -> bool:
        """Does this run hold an array (a value, a seed or a --shape), or does the program
        use an array operation? If not, it runs exactly as v1 did."""
        return self.program.uses_arrays or any(np.ndim(v) > 1 for v in values.values()) \
            or any(np.ndim(v) for v in self.seed.values()) \
            or any(shape for shape in self.shapes.values())

    def given_arrays(self) -> bool:
        """Do --at, --tangent/--cotangent or --shape give an array?"""
        return self.has_arrays({n: np.array([v]) for n, v in self.at.items()})

    def variable_shapes(self, values: dict) -> dict[str, tuple[int, ...]]:
        """The shape of every variable shown: from its values (B, *shape), else --shape."""
        needed = self.program.needed_variables(self.outputs)
        return {v: tuple(np.shape(values[v])[1:]) if v in values
                else tuple(self.shapes.get(v, ())) for v in self.program.variables
                if v in values or v in needed}

    def at_table(self, values: dict, mask: np.ndarray | None,
                 count: int) -> tuple[list[str], np.ndarray]:
        """The variables shown with each of `count` rows, and their values (B, k), bad
        rows nan."""
        needed = self.program.needed_variables(self.outputs)
        variables = [v for v in self.program.variables if v in values or v in needed]
        good = count if mask is None else int(mask.sum())
        if self.has_arrays(values):   # a column per component
            from .components import all_component_names, flatten

            shapes = self.variable_shapes(values)
            at = flatten({v: values.get(v, np.full((good,) + shapes[v], np.nan))
                          for v in variables}, variables, good)
            variables = all_component_names(shapes, variables)
            return variables, at if mask is None else scatter(at, mask)
        at = np.empty((good, len(variables)))
        for j, name in enumerate(variables):
            at[:, j] = values.get(name, np.nan)
        return variables, at if mask is None else scatter(at, mask)

    # --- the results, chunk by chunk ---------------------------------------------------
    def reports(self) -> Iterator[tuple[Report, list]]:
        """The results, chunk by chunk, with each chunk's domain warnings."""
        for points in self.chunks():
            yield self.run(points)

    def _call(self, values: dict, count: int, arrays: bool):
        """The API call behind the command, for `count` points. With arrays every value
        is batched (B, *shape), points first (shared --at values broadcast, no copy), and
        so are the seeds; results are flat over components, with the outputs' shapes."""
        seed = {name: np.broadcast_to(v, (count,) + np.shape(v))
                for name, v in self.seed.items()} if arrays else self.seed
        return self._api(values, seed, self.mode, batch=True if arrays else None)

    def _api(self, values: dict, seed: dict, mode: str, **options):
        """The Program method of the command, with `options` (batch=, reduce=)."""
        program, outputs, inputs = self.program, self.outputs, self.inputs
        if self.command == "eval":
            return program.eval(values, outputs, **options)
        if self.command == "jac":
            return program.jacobian(values, inputs, outputs, mode=mode, **options)
        if self.command == "hess":
            return program.hessian(values, inputs, outputs[0], **options)
        if self.command == "jvp":
            return program.jvp(values, seed, outputs, **options)
        if self.command == "vjp":
            return program.vjp(values, seed, inputs, outputs, **options)
        if self.command == "hvp":
            return program.hvp(values, seed, inputs, outputs[0], **options)
        # grad: one output with one element (shapes.require_scalar_output says so, caret)
        return program.grad(values, inputs, outputs[0], **options)

    def run(self, points: Points | None) -> tuple[Report, list]:
        values, mask, count = self.bindings(points)
        if self.has_arrays(values):
            return self.run_arrays(points, values, mask, count)
        good = count if mask is None else int(mask.sum())
        variables, at = self.at_table(values, mask, count)
        m, n = len(self.outputs), len(self.inputs)
        shapes = {"value": (m,), "jacobian": (m, n), "hessian": (n, n), "jvp": (m,), "vjp": (n,),
                  "hvp": (n,)}
        arrays: dict[str, np.ndarray | None] = dict.fromkeys(shapes)
        warnings, inputs = [], self.inputs
        if good:  # (a program without variables gives one unbatched point: broadcast it)
            result = self._call(values, good, arrays=False)
            warnings, inputs = result.warnings, result.inputs
            for key, shape in shapes.items():
                if getattr(result, key) is not None:
                    arrays[key] = np.broadcast_to(getattr(result, key), (good,) + shape)
        for key in ("value",) + ARRAYS_OF[self.command]:
            if arrays[key] is None:   # no good rows at all
                arrays[key] = np.empty((0,) + shapes[key])
        if mask is not None:  # bad rows keep their place, as nan
            arrays = {key: a if a is None else scatter(a, mask) for key, a in arrays.items()}
        bad = points.bad_rows if points else {}
        return Report(self.command, inputs, self.outputs, variables, at, arrays["value"],
                      arrays["jacobian"], bad, arrays["hessian"], arrays["jvp"],
                      arrays["vjp"], points.first_row if points else 0,
                      hvp=arrays["hvp"]), warnings

    def run_arrays(self, points: Points | None, values: dict, mask, count: int):
        """`run` for a program given arrays: the API takes every value batched
        (B, *shape) and gives results flat over components, with the outputs' shapes."""
        good = count if mask is None else int(mask.sum())
        variables, at = self.at_table(values, mask, count)
        shapes = self.variable_shapes(values)
        result = self._call(values, good, arrays=True)
        output_shapes = {o: tuple(result.shapes[o]) for o in self.outputs}
        report_shapes = Shapes.of(shapes, self.inputs, output_shapes)
        _, inputs, outputs = report_shapes.names()
        self.output_components = len(outputs)
        m, n = len(outputs), len(inputs)
        sizes = {"value": (m,), "jacobian": (m, n), "hessian": (n, n), "jvp": (m,),
                 "vjp": (n,), "hvp": (n,)}
        arrays: dict[str, np.ndarray | None] = dict.fromkeys(sizes)
        for key in ("value",) + ARRAYS_OF[self.command]:
            array = getattr(result, key)
            arrays[key] = np.reshape(array, (good,) + sizes[key])
            if mask is not None:   # bad rows keep their place, as nan
                arrays[key] = scatter(arrays[key], mask)
        bad = points.bad_rows if points else {}
        return Report(self.command, inputs, outputs, variables, at, arrays["value"],
                      arrays["jacobian"], bad, arrays["hessian"], arrays["jvp"],
                      arrays["vjp"], points.first_row if points else 0,
                      report_shapes, arrays["hvp"]), result.warnings

    def reduction(self) -> Iterator[tuple["Rows", list]]:
        """--reduce: the chunks' results summed (or averaged) over their good rows, with
        compensated summation across chunks; yields each chunk's rows (count, bad rows,
        first row) with its warnings as it goes, and leaves the one result in
        `self.reduced` (a Report of one row; `rows` counts the rows used)."""
        from .api import CompensatedSum

        totals: dict[str, CompensatedSum] = {}
        used, result, arrays = 0, None, False
        for points in self.chunks():
            values, batched = self._reduce_bindings(points)
            good = points.count - len(points.bad_rows)
            arrays = self.has_arrays({n: values[n] for n in batched}) or self.given_arrays()
            result = self._summed(values, batched)
            scale = good if result.rows != good else 1   # no column: one point for all
            for key in ("value",) + ARRAYS_OF[self.command]:
                totals.setdefault(key, CompensatedSum()).add(
                    np.asarray(getattr(result, key), dtype=float) * scale)
            used += good
            yield Rows(points.count, points.bad_rows, points.first_row), result.warnings
        sums = {key: total.value() for key, total in totals.items()}
        if self.reduce == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):   # no rows: nan
                sums = {key: s / used for key, s in sums.items()}
        self.reduced = self._reduced_report(result, sums, used, arrays)

    def _reduce_bindings(self, points: Points) -> tuple[dict, list[str]]:
        """The good rows' columns and the --at values as given (shared, unbroadcast:
        their adjoints are summed over the rows inside the sweep); the columns' names."""
        columns = {n: c for n, c in points.columns.items() if n in self.program.variables}
        if points.bad_rows:
            mask = points.good_mask()
            columns = {n: c[mask] for n, c in columns.items()}
        return {**columns, **self.at}, list(columns)

    def _summed(self, values: dict, batched: list[str]):
        """The API call behind the command, summed over the rows of `batched` (jac in
        reverse mode: one sweep sums the parameters' adjoints)."""
        return self._api(values, self.seed, "reverse", batch=set(batched), reduce="sum")

    def _reduced_report(self, result, sums: dict, rows: int, arrays: bool) -> Report:
        """One row: the --at values shown, the summed results."""
        names = [v for v in self.program.variables if v in self.at]
        if not arrays:
            at = np.array([[float(self.at[n]) for n in names]]).reshape(1, len(names))
            return Report(self.command, result.inputs, self.outputs, names, at,
                          sums["value"][None], _row(sums.get("jacobian")), {},
                          _row(sums.get("hessian")), _row(sums.get("jvp")),
                          _row(sums.get("vjp")), 0, None, rows=rows, reduce=self.reduce)
        from .components import all_component_names, flatten

        shapes = {n: tuple(result.shapes[n]) for n in names}
        report_shapes = Shapes(shapes, {i: tuple(result.shapes[i]) for i in self.inputs},
                               {o: tuple(result.shapes[o]) for o in self.outputs})
        _, inputs, outputs = report_shapes.names()
        m, n = len(outputs), len(inputs)
        sizes = {"value": (m,), "jacobian": (m, n), "hessian": (n, n), "jvp": (m,),
                 "vjp": (n,)}
        flat = {key: np.reshape(sums[key], (1,) + sizes[key]) if key in sums else None
                for key in sizes}
        at = flatten({v: np.asarray(self.at[v], dtype=float)[None] for v in names}, names, 1)
        return Report(self.command, inputs, outputs, all_component_names(shapes, names), at,
                      flat["value"], flat["jacobian"], {}, flat["hessian"], flat["jvp"],
                      flat["vjp"], 0, report_shapes, rows=rows, reduce=self.reduce)

    def checks(self, rtol: float, atol: float, gather: bool = False, fast: int | None = None):
        """`check`'s results, chunk by chunk (all chunks as one with `gather`): each
        (CheckResult, variables, at table, bad rows, first row). With `fast` (a seed),
        u^T J v along random directions (jacli.fastcheck) instead of every entry."""
        from .check import check_jacobian
        from .fastcheck import check_fast

        chunks: Iterator = self.chunks()
        if gather:
            gathered = list(chunks)
            chunks = iter([None if gathered == [None] else Points.concat(gathered)])
        for points in chunks:
            values, mask, count = self.bindings(points)
            variables, at = self.at_table(values, mask, count)
            if fast is None:
                result = check_jacobian(self.program, values, self.inputs, self.outputs,
                                        rtol, atol)
            else:
                result = check_fast(self.program, values, self.inputs, self.outputs, rtol,
                                    atol, fast).result
            yield (result, variables, at, points.bad_rows if points else {},
                   points.first_row if points else 0)


    def given_shapes(self) -> dict[str, tuple]:
        """Every variable's shape that --shape, --at or the first points give."""
        shapes = dict(self.shapes)
        shapes.update({name: np.shape(value) for name, value in self.at.items()})
        if self.reader is not None:
            for points in self.chunks():
                shapes.update({name: column.shape[1:]
                               for name, column in points.columns.items()})
                break
        return shapes

    def sparse_reports(self) -> Iterator[tuple["SparseReport", list]]:
        """jac --sparse, hess --sparse: the structural nonzeros per point, chunk by chunk
        (sparsity_view.SparseReport), with each chunk's domain warnings."""
        from .sparsity_view import SparseReport

        for points in self.chunks():
            values, mask, count = self.bindings(points)
            variables, at = self.at_table(values, mask, count)
            if self.command == "hess":
                result = self.program.hessian(values, self.inputs, self.outputs[0],
                                              batch=True, sparse=True)
            else:
                result = self.program.jacobian(values, self.inputs, self.outputs, batch=True,
                                               mode=self.mode, sparse=True)
            good = count if mask is None else int(mask.sum())
            arrays = {"value": result.value.reshape(good, -1), "nonzeros": result.nonzeros,
                      "gradient": result.jacobian.reshape(good, -1)
                      if self.command == "hess" else None}
            if mask is not None:   # bad rows keep their place, as nan
                arrays = {k: a if a is None else scatter(a, mask) for k, a in arrays.items()}
            shapes = None
            if self.has_arrays(values):
                shapes = Shapes.of(self.variable_shapes(values), self.inputs,
                                   {o: tuple(result.shapes[o]) for o in self.outputs})
            yield SparseReport(self.command, result.input_components,
                               result.output_components, variables, at, arrays["value"],
                               arrays["gradient"], result.sparsity, arrays["nonzeros"],
                               points.bad_rows if points else {},
                               points.first_row if points else 0, shapes), result.warnings


class Rows(NamedTuple):
    """A chunk's rows, as --reduce reads them: how many, the bad ones, the first's number."""
    count: int
    bad_rows: dict[int, str]
    first_row: int


def _row(a):
    return None if a is None else np.asarray(a)[None]


def nothing_to_differentiate(program: Program, outputs: list[str]) -> None:
    if not program.variables:
        raise JacliError("nothing to differentiate: the program has no variables",
                         origin="program", hint="jacli eval prints its value")
    raise JacliError(f"nothing to differentiate: {', '.join(outputs)} "
                     f"depend{'s' if len(outputs) == 1 else ''} on no variable",
                     origin="--out", hint="name the inputs with --wrt "
                     f"(the program's variables: {', '.join(program.variables)})")


def check_shapes(shapes: dict, at: dict, program: Program) -> None:
    """--shape names variables of the program, and agrees with the --at values."""
    for name, shape in shapes.items():
        if name not in program.variables:
            raise JacliError(f"'{shorten(name)}' is not a variable of the program (its "
                             f"variables: {shorten(', '.join(program.variables), 200) or 'none'})",
                             origin="--shape")
        if name in at and np.shape(at[name]) != shape:
            from .components import shape_text
            raise JacliError(f"--shape gives '{name}' the shape {shape_text(shape)}, and "
                             f"--at a value of shape {shape_text(np.shape(at[name]))}",
                             origin="--shape")


def scatter(rows: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The good rows put back in place among all rows; bad rows are nan."""
    full = np.full((len(mask),) + rows.shape[1:], np.nan)
    full[mask] = rows
    return full

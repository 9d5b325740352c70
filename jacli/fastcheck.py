"""`check --fast`: the Jacobian checked along one random direction, for programs too large
for the full check (as PyTorch's fast gradcheck).

For unit random directions v (over the inputs' components) and u (over the outputs'),
the forward-mode product u . (J v) is compared with the central difference of u . f along
v, (u . f(x + h v) - u . f(x - h v)) / 2h, extrapolated from the steps h and h/2 as
check.py does per input: one number per point from one JVP and four evaluations, where
the full check takes four evaluations per input component. A wrong partial anywhere in
the program shows in u^T J v unless it is orthogonal to both random directions, which
happens with probability zero. The directions come from `seed`, the same at every point.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import numpy as np

from .check import (DEFAULT_ATOL, DEFAULT_RTOL, DISAGREE, NOT_FINITE, OK, STEP_FACTOR, TINY,
                    CheckResult)


class FastCheck(NamedTuple):
    """The check along one direction, as the full check's result of a 1 x 1 Jacobian:
    output "u^T f", input "v" (d/dt of u . f(x + t v) at t = 0), so every view of
    `check` shows it; and the two directions."""
    result: CheckResult
    tangent: np.ndarray               # (n,): v, over the input components
    cotangent: np.ndarray             # (m,): u, over the output components
    inputs: list[str]                 # the components v runs over
    outputs: list[str]                # the components u runs over

    @property
    def passed(self) -> bool:
        return self.result.passed


def check_fast(program, point: Mapping, wrt: Sequence[str] | None = None,
               outputs: Sequence[str] | None = None, rtol: float = DEFAULT_RTOL,
               atol: float = DEFAULT_ATOL, seed: int = 0) -> FastCheck:
    """Compare u^T J v (AD, forward mode) with a finite difference along v at every point.
    `point` as for check.check_jacobian: values with the points first ((B,) for a scalar,
    (B, *shape) for an array) or numbers shared by every point."""
    values = {name: np.asarray(value, dtype=float) for name, value in point.items()}
    batch = max((len(v) for v in values.values() if v.ndim > 0), default=1)
    values = {name: (np.full(batch, v) if v.ndim == 0 else v) for name, v in values.items()}
    outputs = program.select_outputs(outputs)
    inputs = program.select_inputs(wrt, outputs)
    at = program.eval(values, outputs, batch=True)
    shapes = program.shapes(values, batch=True)
    sizes = [int(np.prod(shapes[name], dtype=np.int64)) for name in inputs]
    rng = np.random.default_rng(seed)
    v = _unit(rng.standard_normal(sum(sizes)))
    u = _unit(rng.standard_normal(at.value.shape[-1]))
    tangent, start = {}, 0
    for name, size in zip(inputs, sizes):
        tangent[name] = v[start:start + size].reshape(shapes[name])
        start += size
    result = program.jvp(values, tangent, outputs, batch=True)
    ad = np.asarray(result.jvp).reshape(batch, -1) @ u

    largest = np.zeros(batch)
    for name in inputs:
        largest = np.maximum(largest, np.abs(values[name]).reshape(batch, -1).max(axis=1,
                                                                                initial=0))
    h = STEP_FACTOR * np.maximum(1.0, largest)

    def along(step: np.ndarray) -> np.ndarray:
        moved = dict(values)
        for name in inputs:
            x = values[name]
            moved[name] = x + step.reshape((batch,) + (1,) * (x.ndim - 1)) * tangent[name]
        return np.asarray(program.eval(moved, outputs, batch=True).value).reshape(batch, -1) @ u

    with np.errstate(all="ignore"):
        d1 = (along(h) - along(-h)) / (2 * h)
        d2 = (along(h / 2) - along(-h / 2)) / h
        fd = np.where(np.isinf(d2) & (d1 == d2), d2, (4 * d2 - d1) / 3)
        agree = (np.isnan(ad) & np.isnan(fd)) | (np.isinf(ad) & (ad == fd))
        finite = np.isfinite(ad) & np.isfinite(fd)
        abs_error = np.where(agree, 0.0, np.abs(ad - fd))
        rel_error = np.where(agree, 0.0, abs_error / np.maximum(np.abs(fd), TINY))
        ok = agree | (finite & (abs_error <= atol + rtol * np.abs(fd)))
    code = np.where(ok, OK, np.where(finite, DISAGREE, NOT_FINITE)).astype(np.int8)
    column = (batch, 1, 1)
    nothing = np.full(column, np.nan)
    value = np.asarray(at.value).reshape(batch, -1) @ u
    check = CheckResult(["v"], ["u^T f"], values, value[:, None], ad.reshape(column),
                        fd.reshape(column), abs_error.reshape(column),
                        rel_error.reshape(column), ok.reshape(column), h[:, None],
                        code.reshape(column), nothing, nothing, rtol, atol,
                        list(result.warnings), _variable_shapes(program, shapes))
    return FastCheck(check, v, u, result.input_components, result.output_components)


def _variable_shapes(program, shapes: dict) -> dict:
    """The variables' shapes, for the views' nested `at` (none for scalars)."""
    variables = {name: shapes[name] for name in program.variables if name in shapes}
    return variables if any(variables.values()) else {}


def _unit(x: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(x))
    return x / norm if norm else x

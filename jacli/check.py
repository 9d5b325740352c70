"""The gradient check: the AD Jacobian beside central finite differences.

    >>> import jacli, numpy as np
    >>> from jacli.check import check_jacobian
    >>> prog = jacli.compile("x^2*y + sin(z)")
    >>> point = {"x": np.array([1.0]), "y": np.array([2.0]), "z": np.array([3.0])}
    >>> check_jacobian(prog, point, ["x", "y", "z"], ["f1"]).passed
    True

How the finite differences are taken, for every input j and all B points at once
(one vectorized `Program.eval` per shifted copy of the points, never a loop per point):

- the step is h_j = eps**(1/3) * max(1, |x_j|) (eps the machine epsilon, so h is about
  6e-6 for |x| <= 1), made exactly representable: h = (x + h) - x;
- the central difference D(h) = (f(x + h) - f(x - h)) / 2h is taken at h and at h/2 and
  combined by Richardson extrapolation, (4 D(h/2) - D(h)) / 3, which cancels the h^2 term
  of the error: log(x) at 1e-3, 1/x at 1e-2 or sqrt(x) at 1e-4, where the step is not
  small beside x, agree to 2e-7 relative or better instead of 4e-7 .. 5e-4;
- the one-sided differences (f(x + h) - f(x)) / h and (f(x) - f(x - h)) / h at both steps
  show kinks: for a smooth function their difference is about h f'' and halves with the
  step, at a kink it is the jump in slope and does not shrink.

An entry (output i, input j) passes when |ad - fd| <= atol + rtol |fd|, or when both are
nan, or both the same infinity; anything else involving nan or inf fails. At a kink the
entry passes when the convention happens to equal the finite difference (`abs(x)` at 0:
both 0) and fails, with the kink named as the reason, where they disagree (`relu(x)` at 0:
0 against 0.5).

The default tolerances, DEFAULT_RTOL = 1e-5 and DEFAULT_ATOL = 1e-7. The extrapolated
difference of a smooth program at an ordinary point agrees with the exact derivative to
about 1e-10 relative (its rounding error, a few eps |f| / h, h ~ 6e-6); the worst of the
cases in tests/test_check.py is sqrt(x) at 1e-4, 2e-7 relative, where the step is 6 % of x
(3e-6 at 5e-5), so rtol = 1e-5 leaves a margin without hiding a wrong derivative, which is
off by far more. The absolute part covers derivatives that are 0, where only the rounding
noise eps |f| / h is left: about 4e-11 for |f| ~ 1, 2e-8 for |f| ~ 1000. A convention at a
kink (relu'(0) = 0 against the difference 0.5) fails by any measure; abs(x) at 0 or a tie
of max, where the convention equals the average of both sides, pass.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import numpy as np

DEFAULT_RTOL = 1e-5
DEFAULT_ATOL = 1e-7

EPS = float(np.finfo(float).eps)
TINY = float(np.finfo(float).tiny)
#: The step is STEP_FACTOR * max(1, |x|): the cube root of eps balances the central
#: difference's truncation error (h^2) against its rounding error (eps / h).
STEP_FACTOR = EPS ** (1.0 / 3.0)

# Why an entry failed (CheckResult.reason_code).
OK, KINK, KINK_NEAR, JUMP, NOT_FINITE, DISAGREE = range(6)

KINK_REASON = ("kink: AD uses jacli's convention (README: Non-differentiable points), "
               "finite differences see the average of both sides")
REASONS = {
    KINK: KINK_REASON,
    KINK_NEAR: ("kink within the finite-difference step: the derivative changes abruptly "
                "next to this point, and finite differences mix the slopes of both sides"),
    JUMP: ("jump: the function is discontinuous here; finite differences grow like 1/h "
           "while AD sees the derivative of one piece"),
    NOT_FINITE: "AD and finite differences disagree (not finite)",
    DISAGREE: "AD and finite differences disagree",
}


class Entry(NamedTuple):
    """One entry of one point's Jacobian: d output / d input, AD beside FD."""
    output: str
    input: str
    ad: float
    fd: float
    abs_error: float
    rel_error: float


#: A failing entry: an Entry and why it fails.
Failure = NamedTuple("Failure", [*Entry.__annotations__.items(), ("reason", str)])


class CheckResult(NamedTuple):
    """AD against finite differences at B points; the arrays are (B, m, n) unless noted."""
    inputs: list[str]                 # n
    outputs: list[str]                # m
    at: dict[str, np.ndarray]         # every variable's values, (B,)
    value: np.ndarray                 # (B, m)
    ad: np.ndarray
    fd: np.ndarray
    abs_error: np.ndarray
    rel_error: np.ndarray
    ok: np.ndarray                    # bool
    steps: np.ndarray                 # (B, n): the step h of each input
    reason_code: np.ndarray           # int: OK, or why the entry failed
    left: np.ndarray                  # one-sided slopes (f(x) - f(x - h/2)) / (h/2)
    right: np.ndarray                 # and (f(x + h/2) - f(x)) / (h/2)
    rtol: float
    atol: float
    warnings: list                    # domain warnings of the AD pass
    #: for a program of arrays: every variable's shape, then every checked output's (the
    #: rows and columns above are their components); empty for scalars
    shapes: Mapping[str, tuple] = {}

    @property
    def count(self) -> int:
        return len(self.ad)

    @property
    def passed(self) -> bool:
        """Every entry of every point is within tolerance."""
        return bool(self.ok.all())

    @property
    def point_ok(self) -> np.ndarray:
        """(B,) bool: the points whose every entry passed."""
        return self.ok.reshape(self.count, -1).all(axis=1)

    @property
    def max_abs_error(self) -> np.ndarray:
        """(B,): the largest |ad - fd| of each point (nan if one is nan; 0 if no entry)."""
        return _max_per_point(self.abs_error)

    @property
    def max_rel_error(self) -> np.ndarray:
        return _max_per_point(self.rel_error)

    def worst_index(self) -> np.ndarray:
        """(B, 2): (output, input) of each point's worst entry: among the failing entries
        if any, else among all, the one furthest over (or closest to) its tolerance, by
        |ad - fd| / (atol + rtol |fd|) (a nan error counting as the largest)."""
        flat = self.count, len(self.outputs) * len(self.inputs)
        with np.errstate(divide="ignore", invalid="ignore"):
            score = self.abs_error / (self.atol + self.rtol * np.abs(self.fd))
        score = np.where(np.isnan(score), np.inf, score).reshape(flat)
        failing = ~self.ok.reshape(flat)
        # Failing entries rank above every passing one; then by score.
        best = (np.lexsort((score, failing), axis=-1)[:, -1] if flat[1]
                else np.zeros(flat[0], int))
        return np.stack(np.divmod(best, max(len(self.inputs), 1)), axis=1)

    def worst(self, point_index: int) -> Entry | None:
        """The entry with the largest error of one point, measured against its tolerance
        (see worst_index); None if the Jacobian is empty."""
        if not self.outputs or not self.inputs:
            return None
        i, j = self.worst_index()[point_index]
        return self._entry(point_index, int(i), int(j))

    def _entry(self, b: int, i: int, j: int) -> Entry:
        return Entry(self.outputs[i], self.inputs[j], float(self.ad[b, i, j]),
                     float(self.fd[b, i, j]), float(self.abs_error[b, i, j]),
                     float(self.rel_error[b, i, j]))

    def failures(self, point_index: int) -> list[Failure]:
        """The failing entries of one point, row-major, each with its reason."""
        found = []
        for i, j in zip(*np.nonzero(~self.ok[point_index])):
            entry = self._entry(point_index, int(i), int(j))
            found.append(Failure(*entry, explain_failure(self, point_index, int(i), int(j))))
        return found

    def failing_points(self) -> np.ndarray:
        """The indices of the points that failed."""
        return np.flatnonzero(~self.point_ok)


def _max_per_point(errors: np.ndarray) -> np.ndarray:
    flat = errors.reshape(len(errors), -1)
    if flat.shape[1] == 0:
        return np.zeros(len(errors))
    return flat.max(axis=1)     # nan propagates: a nan error is never hidden


def explain_failure(result: CheckResult, point_index: int, output: int | str,
                    input: int | str) -> str | None:  # noqa: A002 - the natural name
    """Why an entry failed, in a short sentence; None if it passed.

    `output` and `input` are indices or names."""
    i = result.outputs.index(output) if isinstance(output, str) else output
    j = result.inputs.index(input) if isinstance(input, str) else input
    code = int(result.reason_code[point_index, i, j])
    if code == OK:
        return None
    text = REASONS[code]
    if code == NOT_FINITE:
        ad, fd = result.ad[point_index, i, j], result.fd[point_index, i, j]
        if np.isnan(fd) and not np.isnan(ad):
            text = ("finite differences are nan: the program is not defined on both sides "
                    "of the point (an edge of its domain?)")
        elif np.isnan(ad) and not np.isnan(fd):
            text = "AD is nan where finite differences are not"
    if code in (KINK, KINK_NEAR):
        left = float(result.left[point_index, i, j])
        right = float(result.right[point_index, i, j])
        text += f" (slope {left:.6g} on the left, {right:.6g} on the right)"
    return text


def steps(x: np.ndarray) -> np.ndarray:
    """The finite-difference step for each value of x: eps**(1/3) * max(1, |x|), made
    exactly representable, so that (x + h) - x == h."""
    x = np.asarray(x, dtype=float)
    with np.errstate(invalid="ignore", over="ignore"):
        h = STEP_FACTOR * np.maximum(1.0, np.abs(x))
        return (x + h) - x


def _as_batch(point: Mapping) -> tuple[dict[str, np.ndarray], int]:
    """Every value as an array (B,): numbers are shared by all points."""
    arrays = {name: np.asarray(value, dtype=float) for name, value in point.items()}
    lengths = {len(v) for v in arrays.values() if v.ndim == 1}
    if len(lengths) > 1:
        raise ValueError(f"the point's arrays have different lengths: {sorted(lengths)}")
    batch = lengths.pop() if lengths else 1
    return {name: (np.full(batch, v) if v.ndim == 0 else v) for name, v in arrays.items()}, batch


def _arrays(program, point: Mapping) -> bool:
    """Does this check need the array path (an array value, or an array operation)?"""
    return bool(getattr(program, "uses_arrays", False)) or any(
        np.ndim(v) > 1 for v in point.values())


def check_jacobian(program, point: Mapping[str, np.ndarray], wrt: Sequence[str] | None = None,
                   outputs: Sequence[str] | None = None, rtol: float = DEFAULT_RTOL,
                   atol: float = DEFAULT_ATOL) -> CheckResult:
    """Compare `program`'s AD Jacobian with finite differences at every point.

    `point` maps each variable to its values at the B points (arrays (B,), or numbers
    shared by all points); `wrt` and `outputs` select as in Program.jacobian (None:
    the defaults). For a program of arrays every value is (B, *shape), the points first
    (`batch=True`), and every component is checked: the rows and columns are the
    outputs' and inputs' components (y[0], W[1][2]). Raises JacliError as
    Program.jacobian does (a missing value, an unknown name)."""
    if _arrays(program, point):
        point = {name: np.asarray(value, dtype=float) for name, value in point.items()}
        batch = len(next(iter(point.values()))) if point else 1
        result = program.jacobian(point, wrt, outputs, batch=True)
        inputs, outs = result.input_components, result.output_components
        # column j of the Jacobian: component `flat` of variable `name`
        columns = [(name, flat) for name in result.inputs
                   for flat in range(int(np.prod(result.shapes.get(name, ()), dtype=np.int64)))]
        selected = list(result.outputs)
        shapes = {name: tuple(shape) for name, shape in result.shapes.items()}
    else:
        point, batch = _as_batch(point)
        result = program.jacobian(point, wrt, outputs)
        inputs, outs = list(result.inputs), list(result.outputs)
        columns = [(name, None) for name in inputs]
        selected = outs
        shapes = {}
    m, n = len(outs), len(inputs)
    value = np.broadcast_to(result.value, (batch, m))
    ad = np.array(np.broadcast_to(result.jacobian, (batch, m, n)), dtype=float)

    shape = (batch, m, n)
    fd, left, right = np.empty(shape), np.empty(shape), np.empty(shape)
    kink, kink_near, jump = (np.zeros(shape, bool) for _ in range(3))
    step = np.empty((batch, n))

    def component(name: str, flat: int | None) -> np.ndarray:
        """The B values of one input component."""
        x = point[name]
        return x if flat is None else x.reshape(len(x), -1)[:, flat]

    def f(name: str, flat: int | None, x: np.ndarray) -> np.ndarray:
        shifted = dict(point)
        if flat is None:
            shifted[name] = x
            return np.broadcast_to(program.eval(shifted, selected).value, (batch, m))
        moved = np.array(point[name])   # a copy: the CLI's shared values are read-only views
        moved.reshape(len(moved), -1)[:, flat] = x
        shifted[name] = moved
        return np.reshape(program.eval(shifted, selected, batch=True).value, (batch, m))

    f0 = value
    with np.errstate(all="ignore"):
        for j, (name, flat) in enumerate(columns):
            x = component(name, flat)
            h1 = steps(x)
            step[:, j] = h1
            xp1, xm1 = x + h1, x - h1
            xp2, xm2 = x + h1 / 2, x - h1 / 2
            fp1, fm1, fp2, fm2 = (f(name, flat, xs) for xs in (xp1, xm1, xp2, xm2))
            # Actual (rounded) distances, as columns against the (B, m) values.
            w1, w2 = (xp1 - xm1)[:, None], (xp2 - xm2)[:, None]
            d1 = (fp1 - fm1) / w1
            d2 = (fp2 - fm2) / w2
            r2 = (w1 / w2) ** 2                              # 4, up to rounding
            # (Where the differences are one infinity, that is the difference, not nan.)
            fd[:, :, j] = np.where(np.isinf(d2) & (d1 == d2), d2, (r2 * d2 - d1) / (r2 - 1))
            right1 = (fp1 - f0) / (xp1 - x)[:, None]
            left1 = (f0 - fm1) / (x - xm1)[:, None]
            right2 = (fp2 - f0) / (xp2 - x)[:, None]
            left2 = (f0 - fm2) / (x - xm2)[:, None]
            left[:, :, j], right[:, :, j] = left2, right2
            gap1, gap2 = right1 - left1, right2 - left2
            # Rounding noise of the half-step gap; the gap must stand well above it.
            noise = EPS * (np.abs(fp2) + np.abs(fm2) + 2 * np.abs(f0)) / (w2 / 2)
            slope = np.maximum(np.abs(left1), np.abs(right1))
            significant = np.abs(gap1) > np.maximum(atol + rtol * slope, 100 * noise)
            # Smooth: the gap is h f'' and halves with the step. Not halving: a kink.
            not_smooth = significant & (np.abs(gap2 - gap1 * (w2 / w1)) > 0.25 * np.abs(gap1))
            # At the point itself the gap is the same at both steps (up to h f'' and
            # rounding); a kink a little way off (inside the step) changes it.
            kink[:, :, j] = not_smooth & (np.abs(gap2 - gap1) <= 1e-3 * np.abs(gap1) + 8 * noise)
            kink_near[:, :, j] = not_smooth & ~kink[:, :, j]
            # A jump: the central difference doubles when the step halves.
            jump[:, :, j] = (np.abs(d1) > 0) & (np.abs(d2 - d1 * (w1 / w2)) <= 0.25 * np.abs(d2))

        finite = np.isfinite(ad) & np.isfinite(fd)
        both_nan = np.isnan(ad) & np.isnan(fd)
        same_inf = np.isinf(ad) & (ad == fd)
        agree = both_nan | same_inf
        abs_error = np.where(agree, 0.0, np.abs(ad - fd))
        rel_error = np.where(agree, 0.0, abs_error / np.maximum(np.abs(fd), TINY))
        rel_error = np.where(np.isinf(abs_error), np.inf, rel_error)
        within = finite & (abs_error <= atol + rtol * np.abs(fd))
    smooth_ok = agree | within
    ok = smooth_ok

    code = np.full(shape, DISAGREE, dtype=np.int8)
    code[~finite & ~agree] = NOT_FINITE
    code[finite & jump] = JUMP
    code[kink_near] = KINK_NEAR
    code[kink] = KINK
    code[ok] = OK
    return CheckResult(inputs, outs, point, np.array(value), ad, fd, abs_error, rel_error, ok,
                       step, code, left, right, rtol, atol, list(result.warnings), shapes)

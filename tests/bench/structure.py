"""S1, S2: sparse Jacobians and Hessians by colouring (issue 15), in process.

S1  `jac` of exp(x)*sin(x), x in R^2000, at one point, against one `eval` of the same
    program: the API's dense Jacobian (mode auto: one forward sweep, the diagonal
    pattern has one colour), its sparse result (sparse=True: the 2,000 nonzeros), and
    for information the dense forward mode (2,000 seed directions). Also whole
    processes: `jacli jac --sparse --format json` against `jacli eval --format json`.
S2  `hess` of the chained Rosenbrock function for n = 1000 against one `grad`: the
    pattern must be tridiagonal and coloured with at most 3 colours.

Run: python -m tests.bench --only S1,S2
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import numpy as np

import jacli

S1_PROGRAM = "exp(x)*sin(x)"
S2_PROGRAM = "sum(100*(x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2)"


class Disagreement(AssertionError):
    pass


def _times(calls: dict, repeats: int) -> dict[str, list[float]]:
    """Each call timed `repeats` times, alternating (which goes first alternates too)."""
    times = {name: [] for name in calls}
    names = list(calls)
    for k in range(repeats):
        for name in (names if k % 2 == 0 else names[::-1]):
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
    return times


def _row(results, group, name, calls, repeats, label, limit=None, detail=""):
    for call in calls.values():   # warm: the pattern and colouring are remembered per shape
        call()
    results.compared(group, name, _times(calls, repeats), label, limit=limit, detail=detail)


def bench_s1(args, results, rng, tmp: str) -> None:
    n = 2000
    print(f"S1 jac of {S1_PROGRAM}, x in R^{n}, one point, in process", flush=True)
    program = jacli.compile(S1_PROGRAM)
    x = rng.uniform(-2.0, 2.0, n)
    point = {"x": x}
    structure = program.sparsity({"x": (n,)})
    print(f"  pattern: {structure.pattern.nnz} nonzeros; forward {structure.forward} "
          f"colour(s) instead of {n}, reverse {structure.reverse} instead of {n}")
    result = program.jacobian(point, mode="auto", batch=False)
    want = np.exp(x) * (np.sin(x) + np.cos(x))
    if not (np.allclose(np.diag(result.jacobian), want, rtol=1e-13)
            and np.count_nonzero(result.jacobian) == n):
        raise Disagreement("S1: the Jacobian is not diag(exp(x)(sin x + cos x))")
    repeats = max(9, args.repeats * 3)
    evaluate = lambda: program.eval(point, batch=False)   # noqa: E731
    _row(results, "S1", "jac dense result (API)",
         {"jacli": lambda: program.jacobian(point, mode="auto", batch=False),
          "reference": evaluate}, repeats, "one eval", limit=5.0,
         detail="the (2000, 2000) result alone is 32 MB of zeros to allocate")
    _row(results, "S1", "jac sparse=True (API)",
         {"jacli": lambda: program.jacobian(point, mode="auto", batch=False, sparse=True),
          "reference": evaluate}, repeats, "one eval", limit=5.0)
    _row(results, "S1", "jac --mode forward, dense (API)",
         {"jacli": lambda: program.jacobian(point, mode="forward", batch=False),
          "reference": evaluate}, 3, "one eval",
         detail="no colouring: 2,000 seed directions")
    at = "x=[" + ",".join(repr(float(v)) for v in x) + "]"
    command = [sys.executable, "-m", "jacli"]
    _row(results, "S1", "jacli jac --sparse (process)",
         {"jacli": lambda: subprocess.run(command + ["jac", S1_PROGRAM, "--at", at, "--sparse",
                                                     "--format", "json"],
                                          capture_output=True, check=True),
          "reference": lambda: subprocess.run(command + ["eval", S1_PROGRAM, "--at", at,
                                                         "--format", "json"],
                                              capture_output=True, check=True)},
         max(5, args.repeats), "jacli eval", limit=5.0)


def bench_s2(args, results, rng, tmp: str) -> None:
    n = 1000
    print(f"S2 hess of the chained Rosenbrock function, n = {n}, one point, in process",
          flush=True)
    program = jacli.compile(S2_PROGRAM)
    structure = program.sparsity({"x": (n,)}, hessian=True)
    i, j = np.indices((n, n))
    if not np.array_equal(structure.pattern.dense(), np.abs(i - j) <= 1):
        raise Disagreement("S2: the Hessian's pattern is not tridiagonal")
    if structure.hessian > 3:
        raise Disagreement(f"S2: {structure.hessian} colours, more than 3")
    print(f"  pattern: tridiagonal, {structure.pattern.nnz} nonzeros; "
          f"{structure.hessian} colours instead of {n}")
    x = rng.uniform(-2.0, 2.0, n)
    point = {"x": x}
    coloured = program.hessian(point, batch=False).hessian
    dense = program.hessian(point, batch=False, colour=False).hessian
    if not np.array_equal(coloured, dense):
        raise Disagreement("S2: the coloured Hessian differs from the dense one")
    repeats = max(9, args.repeats * 3)
    grad = lambda: program.grad(point, batch=False)   # noqa: E731
    _row(results, "S2", f"hess, {structure.hessian} colours (API)",
         {"jacli": lambda: program.hessian(point, batch=False), "reference": grad},
         repeats, "one grad", limit=10.0, detail="equal to the dense Hessian bit for bit")
    _row(results, "S2", "hess sparse=True (API)",
         {"jacli": lambda: program.hessian(point, batch=False, sparse=True),
          "reference": grad}, repeats, "one grad", limit=10.0)
    _row(results, "S2", "hess without colouring (API)",
         {"jacli": lambda: program.hessian(point, batch=False, colour=False),
          "reference": grad}, 3, "one grad", detail="1,001 reverse seed directions")


def bench_s3(args, results, rng, tmp: str) -> None:
    n = 1000
    print(f"S3 hvp of the chained Rosenbrock function, n = {n}, one point, in process",
          flush=True)
    program = jacli.compile(S2_PROGRAM)
    point, v = {"x": rng.uniform(-2.0, 2.0, n)}, rng.standard_normal(n)
    expected = program.hessian(point, batch=False).hessian @ v
    if not np.allclose(program.hvp(point, {"x": v}, batch=False).hvp, expected, rtol=1e-12):
        raise Disagreement("S3: hvp differs from hess @ v")
    _row(results, "S3", "hvp, forward over reverse (API)",
         {"jacli": lambda: program.hvp(point, {"x": v}, batch=False),
          "reference": lambda: program.grad(point, batch=False)},
         max(9, args.repeats * 3), "one grad", limit=5.0, detail="equal to hess @ v")


def colour_counts() -> list[str]:
    """The colour counts of the samples' Jacobians (and Hessians of scalar outputs)."""
    from pathlib import Path

    lines = []
    for path in sorted(Path("samples").glob("*.jac")):
        program = jacli.compile(path.read_text())
        s = program.sparsity({})
        m, n = s.pattern.shape
        text = (f"  {path.name}: {m}x{n}, {s.pattern.nnz} nonzeros; forward {s.forward} "
                f"of {n}, reverse {s.reverse} of {m}")
        if len(program.outputs) == 1:
            h = program.sparsity({}, hessian=True)
            text += f"; hess {h.hessian} of {n} ({h.pattern.nnz} nonzeros)"
        lines.append(text)
    return lines


def bench_colours(args, results, rng, tmp: str) -> None:
    print("Colour counts of the samples (scalar variables):")
    print("\n".join(colour_counts()), flush=True)


BENCHMARKS = {"S1": bench_s1, "S2": bench_s2, "S3": bench_s3, "S0": bench_colours}

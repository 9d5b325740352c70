"""Benchmarks of whole datasets (issue 14): the gradient of a loss summed over every row.

D1 reduce, API  the summed squared loss of a 2-8-1 tanh network over 100,000 rows, its
                gradient with respect to the 33 weights: `program.grad(points,
                reduce="sum")` against a hand-written batched NumPy backprop of the same
                summed loss (and JAX's jit(grad) beside it where JAX is installed).
D4 reduce, RSS  peak RSS of `jacli grad --points N.csv --reduce sum` over 10,000,000 rows
                against 1,000,000 (tests/bench/memory.py's launcher): streaming means ~1.

Registered in tests/bench/__main__.py (BENCHMARKS); run with
`python -m tests.bench --only D1,D4`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

import jacli

from . import memory

NET = """
let h = tanh(W1 @ [x1, x2] + b1)
loss = (W2 @ h + b2 - y)^2
"""
WEIGHTS = ["W1", "b1", "W2", "b2"]
D1_ROWS = 100_000


def _bench():
    # The runner's helpers, imported when a benchmark runs (the runner imports this module).
    from . import __main__ as bench
    return bench


def network(rng, rows: int):
    """Data (x1, x2, y) and the 33 weights: W1 (8, 2), b1 (8,), W2 (8,), b2."""
    x = rng.normal(size=(rows, 2))
    weights = {"W1": rng.normal(size=(8, 2)) / 2, "b1": rng.normal(size=8) / 2,
               "W2": rng.normal(size=8) / 2, "b2": 0.1}
    return x, np.sin(x[:, 0]) * x[:, 1], weights


def numpy_backprop(x, y, w):
    """The summed loss and its gradient (W1, b1, W2, b2 flattened), backprop by hand."""
    h = np.tanh(x @ w["W1"].T + w["b1"])
    r = h @ w["W2"] + w["b2"] - y
    g = 2 * r                                   # d loss / d output, per row
    dz = np.outer(g, w["W2"]) * (1 - h * h)     # through tanh
    gradient = np.concatenate([(dz.T @ x).ravel(), dz.sum(0), h.T @ g, [g.sum()]])
    return r @ r, gradient


def jax_backprop(x, y, w):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)

    def loss(p):
        h = jnp.tanh(x @ p["W1"].T + p["b1"])
        r = h @ p["W2"] + p["b2"] - y
        return r @ r
    grad = jax.jit(jax.value_and_grad(loss))
    params = {k: jnp.asarray(v) for k, v in w.items()}

    def run():
        value, g = grad(params)
        g = jax.block_until_ready(g)
        return float(value), np.concatenate([np.ravel(g[k]) for k in WEIGHTS])
    return run


def bench_d1(args, results, rng, tmp: str) -> None:
    bench = _bench()
    x, y, w = network(rng, D1_ROWS)
    net = jacli.compile(NET)
    point = {"x1": x[:, 0], "x2": x[:, 1], "y": y, **w}
    print(f"D1 reduce: summed squared loss of a 2-8-1 tanh network over {D1_ROWS:,} rows, "
          "gradient w.r.t. its 33 weights, in process\n"
          f"  jacli:     net.grad(points, wrt={WEIGHTS}, reduce='sum')\n"
          "  reference: hand-written batched NumPy backprop of the summed loss", flush=True)

    def call():
        return net.grad(point, wrt=WEIGHTS, batch={"x1", "x2", "y"}, reduce="sum")

    def reference():
        return numpy_backprop(x, y, w)
    got, (value, gradient) = call(), reference()
    bench.check_close("D1 loss", got.value[0], value)
    bench.check_close("D1 gradient", got.gradient, gradient)
    print(f"  agree with NumPy: loss {value:.6g} and the 33 partials (rtol=1e-10); "
          f"rows {got.rows:,}")
    times = bench.interleaved({"jacli": call, "reference": reference}, args.repeats)
    results.compared("D1", f"reduce sum, grad of 33 weights, {D1_ROWS:,} rows (API)", times,
                     "NumPy backprop", limit=1.2, detail="in-process: program.grad(..., "
                     "reduce='sum') vs hand-written batched NumPy backprop")
    import importlib.util

    if importlib.util.find_spec("jax") is None:
        results.add(bench.Row("D1", "vs JAX jit(grad)", status="skipped: jax is not installed"))
        return
    run = jax_backprop(x, y, w)
    jax_value, jax_gradient = run()
    bench.check_close("D1 JAX gradient", got.gradient, jax_gradient)
    times = bench.interleaved({"jacli": call, "reference": run}, args.repeats)
    results.compared("D1", "vs JAX jit(grad)", times, "JAX", detail="compute only; JAX's "
                     "compilation (its first call) not counted")


def bench_d4(args, results, rng, tmp: str) -> None:
    bench = _bench()
    rows = [min(args.memory_rows), max(args.memory_rows)]
    # this checkout's jacli (`python -m jacli` from the checkout, as the tests run it)
    command = [bench.sys.executable, "-m", "jacli"]
    print(f"D4 reduce memory: peak RSS of `jacli grad '{memory.PROGRAM}' --points N.csv "
          f"--reduce sum` over {rows[0]:,} and {rows[1]:,} rows", flush=True)
    peaks = []
    with tempfile.TemporaryDirectory(dir=tmp) as scratch:
        for count in rows:
            path = Path(scratch) / f"points_{count}.csv"
            memory.write_points(path, count)
            seconds, rss = memory.peak_rss(command + ["grad", memory.PROGRAM, "--points",
                                                      str(path), "--reduce", "sum"])
            path.unlink()
            peaks.append(rss)
            print(f"  {count:>12,} rows  {seconds:7.1f} s  peak RSS {rss / 2**20:7.1f} MiB",
                  flush=True)
    results.add(bench.Row("D4", f"reduce peak RSS, {rows[1]:,} vs {rows[0]:,} rows",
                          peaks[1], peaks[0], f"{rows[0]:,} rows", unit="B", limit=1.2,
                          detail="whole process, ru_maxrss of jacli (memory.py's launcher)"))


BENCHMARKS = {"D1": bench_d1, "D4": bench_d4}

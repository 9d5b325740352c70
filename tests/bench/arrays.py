"""Benchmarks of programs of arrays (issue 13, Performance), run by `python -m tests.bench`.

A1 MLP gradient  the gradient of a 2-16-16-1 tanh MLP's squared loss with respect to all
                 337 weights, per point, over 100,000 points (data as points, the weights
                 as array values shared by every point): the API against a hand-written
                 batched NumPy backprop of the same network (and JAX's jit(vmap(grad))
                 where JAX is installed).
A2 softmax jac   the Jacobian of softmax(x), x in R^200, at 1,000 points (the API, batch=True)
                 against the hand-written NumPy Jacobian diag(y) - y y^T, batched.
A3 cold start    `jacli grad "sum(x^2 * sin(x))" --at 'x=[...10 values]'` against a NumPy
                 script printing the same gradient: whole processes, as B1.

Each pair is checked to agree before it is timed, and timed interleaved (medians), with
the helpers of tests/bench/__main__.py.
"""

from __future__ import annotations

import compileall
import importlib.util
import shlex
import sys
import time
from pathlib import Path

import numpy as np

import jacli
import jacli.grammar

# --- A1: a 2-16-16-1 tanh MLP --------------------------------------------------------------

MLP = """\
let h1 = tanh(W1 @ x + b1)
let h2 = tanh(W2 @ h1 + b2)
let f = dot(w3, h2) + b3
loss = (f - y)^2
"""
WEIGHTS = {"W1": (16, 2), "b1": (16,), "W2": (16, 16), "b2": (16,), "w3": (16,), "b3": ()}
N_WEIGHTS = sum(int(np.prod(s, dtype=np.int64)) for s in WEIGHTS.values())   # 337


def mlp_reference(x, y, W1, b1, W2, b2, w3, b3):
    """Batched backprop by hand: the loss (B, 1) and its gradient (B, 337), the weights in
    the order of WEIGHTS, each flattened row-major (as jacli's components)."""
    h1 = np.tanh(x @ W1.T + b1)                  # (B, 16)
    h2 = np.tanh(h1 @ W2.T + b2)                 # (B, 16)
    r = h2 @ w3 + b3 - y                         # (B,)
    df = 2.0 * r                                 # d loss / d f
    da2 = df[:, None] * w3 * (1.0 - h2 * h2)     # (B, 16)
    da1 = (da2 @ W2) * (1.0 - h1 * h1)           # (B, 16)
    batch = len(x)
    grad = np.empty((batch, N_WEIGHTS))
    # the outer products straight into their columns (views: no temporaries)
    np.multiply(da1[:, :, None], x[:, None, :], out=grad[:, 0:32].reshape(batch, 16, 2))
    grad[:, 32:48] = da1
    np.multiply(da2[:, :, None], h1[:, None, :], out=grad[:, 48:304].reshape(batch, 16, 16))
    grad[:, 304:320] = da2
    np.multiply(df[:, None], h2, out=grad[:, 320:336])
    grad[:, 336] = df
    return (r * r)[:, None], grad


def jax_mlp(x, y, weights):
    """JAX (float64): jit(vmap(value_and_grad)) over the points, the weights shared; the
    timed call includes the copy back to NumPy and the gradient's flattening."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    def loss(params, xi, yi):
        W1, b1, W2, b2, w3, b3 = params
        h1 = jnp.tanh(W1 @ xi + b1)
        h2 = jnp.tanh(W2 @ h1 + b2)
        return (jnp.dot(w3, h2) + b3 - yi) ** 2

    both = jax.jit(jax.vmap(jax.value_and_grad(loss), in_axes=(None, 0, 0)))
    params = tuple(jnp.asarray(weights[name]) for name in WEIGHTS)
    xs, ys = jax.device_put(x), jax.device_put(y)

    def run():
        value, grads = both(params, xs, ys)
        flat = np.concatenate([np.asarray(g).reshape(len(x), -1) for g in grads], axis=1)
        return np.asarray(value)[:, None], flat
    return run


def bench_a1(args, results, rng, tmp: str) -> None:
    points = 10_000 if args.quick else 100_000
    print(f"A1 MLP gradient: 2-16-16-1 tanh MLP, squared loss, d loss / d all {N_WEIGHTS} "
          f"weights at {points:,} points, in process\n"
          f"  jacli:     program.grad(point, wrt={list(WEIGHTS)}, batch={{'x', 'y'}})   "
          f"({MLP.strip().replace(chr(10), '; ')})\n"
          "  reference: batched NumPy backprop written by hand", flush=True)
    weights = {name: rng.normal(0.0, 0.5, shape) for name, shape in WEIGHTS.items()}
    x, y = rng.uniform(-2.0, 2.0, (points, 2)), rng.normal(0.0, 1.0, points)
    program = jacli.compile(MLP)
    point = {"x": x, "y": y, **weights}

    def call():
        return program.grad(point, wrt=list(WEIGHTS), batch={"x", "y"})

    def reference():
        return mlp_reference(x, y, *weights.values())
    got, (value, grad) = call(), reference()
    check_close("A1 loss", got.value, value)
    check_close("A1 gradient", got.gradient, grad)
    print("  agree: loss and gradient (np.allclose, rtol=1e-10)")
    times = interleaved({"jacli": call, "reference": reference}, args.repeats)
    results.compared("A1", f"MLP grad, {N_WEIGHTS} weights, {points:,} pts (API)", times,
                     "NumPy", limit=1.5, detail="in-process compute: program.grad vs a "
                     "hand-written batched backprop, both giving the loss (B,1) and the "
                     "gradient (B,337)")
    if args.profile:
        profile(call, "A1 MLP gradient")
    if importlib.util.find_spec("jax") is None:
        results.add(Row("A1", "MLP grad vs JAX", status="skipped: jax is not installed"))
        return
    try:
        start = time.perf_counter()
        run = jax_mlp(x, y, weights)
        jax_value, jax_grad = run()
        setup = time.perf_counter() - start
        check_close("A1 JAX loss", got.value, jax_value)
        check_close("A1 JAX gradient", got.gradient, jax_grad)
        times = interleaved({"jacli": call, "reference": run}, args.repeats)
        results.compared("A1", "MLP grad vs JAX", times, "JAX jit(vmap(grad))",
                         detail=f"compute only; JAX's one-time compilation {setup:.2f} s "
                         "not counted")
    except BenchFailure:
        raise
    except Exception as error:   # JAX itself failed: say so, go on
        results.add(Row("A1", "MLP grad vs JAX",
                        status=f"skipped: jax failed: {type(error).__name__}: {error}"))


# --- A2: the Jacobian of softmax -----------------------------------------------------------

SOFTMAX_SIZE = 200


def softmax_reference(x):
    """softmax along the last axis (B, n) and its Jacobian diag(y) - y y^T (B, n, n)."""
    e = np.exp(x - np.max(x, axis=1, keepdims=True))
    y = e / np.sum(e, axis=1, keepdims=True)
    jacobian = y[:, :, None] * -y[:, None, :]
    diagonal = np.arange(x.shape[1])
    jacobian[:, diagonal, diagonal] += y
    return y, jacobian


def bench_a2(args, results, rng, tmp: str) -> None:
    points = 200 if args.quick else 1_000
    print(f"A2 softmax Jacobian: jac of y = softmax(x), x in R^{SOFTMAX_SIZE}, at {points:,} "
          "points, in process\n"
          "  jacli:     program.jacobian({'x': X}, batch=True)\n"
          "  reference: NumPy softmax, then diag(y) - y y^T for every point at once",
          flush=True)
    program = jacli.compile("y = softmax(x)")
    x = rng.normal(0.0, 2.0, (points, SOFTMAX_SIZE))

    def call():
        return program.jacobian({"x": x}, batch=True)

    def reference():
        return softmax_reference(x)
    got, (value, jacobian) = call(), reference()
    check_close("A2 softmax", got.value, value)
    check_close("A2 Jacobian", got.jacobian, jacobian)
    print(f"  agree: values {got.value.shape} and Jacobian {got.jacobian.shape} "
          "(np.allclose, rtol=1e-10)")
    times = interleaved({"jacli": call, "reference": reference}, args.repeats)
    results.compared("A2", f"softmax jac, R^{SOFTMAX_SIZE}, {points:,} pts (API)", times,
                     "NumPy", limit=2.0, detail="in-process compute: program.jacobian vs "
                     "the hand-written NumPy Jacobian, both giving values (B,n) and the "
                     "Jacobian (B,n,n)")
    if args.profile:
        profile(call, "A2 softmax Jacobian")


# --- A3: a one-liner on arrays, whole process ----------------------------------------------

A3_PROGRAM = "sum(x^2 * sin(x))"
A3_X = [0.5 * k for k in range(1, 11)]
A3_AT = "x=[" + ",".join(f"{v:g}" for v in A3_X) + "]"
A3_REF = (f"import numpy as np; x = np.array({A3_X!r}); "
          "g = 2*x*np.sin(x) + x*x*np.cos(x); "
          "print(' '.join(repr(float(v)) for v in g))")


def bench_a3(args, results, rng, tmp: str) -> None:
    jacli_cmd = jacli_command() + ["grad", A3_PROGRAM, "--at", A3_AT]
    ref_cmd = [sys.executable, "-c", A3_REF]
    print(f"A3 cold start on an array: grad at one point, whole processes\n"
          f"  jacli:     {shlex.join(jacli_cmd)}\n"
          f"  reference: python -c <NumPy: import numpy, 2x sin x + x^2 cos x, print>",
          flush=True)
    if sys.flags.dont_write_bytecode:   # as B1: compile jacli once, as a first run would
        for package in (jacli, jacli.grammar):
            compileall.compile_dir(Path(package.__file__).parent, quiet=1)
    got = [float(v) for v in run_process(jacli_cmd, tmp)[0].split()]
    want = [float(v) for v in run_process(ref_cmd, tmp)[0].split()]
    check_close("A3 gradient", np.array(got), np.array(want))
    print(f"  agree: {len(got)} components")
    times = interleaved({"jacli": lambda: run_process(jacli_cmd, tmp),
                         "reference": lambda: run_process(ref_cmd, tmp)}, args.cold_repeats)
    results.compared("A3", "cold start, grad of an array (process)", times, "NumPy script",
                     limit=1.3, detail=f"whole processes, median of {args.cold_repeats} "
                     f"interleaved: jacli grad '{A3_PROGRAM}' --at '{A3_AT}' vs "
                     "python -c 'import numpy as np; ...print(gradient)'")


BENCHMARKS = {"A1": bench_a1, "A2": bench_a2, "A3": bench_a3}

# Last, so that either module can be imported first: __main__.py imports this one after
# its helpers, and reads BENCHMARKS above.
from .__main__ import (BenchFailure, Row, check_close, interleaved,  # noqa: E402
                       jacli_command, profile, run_process)

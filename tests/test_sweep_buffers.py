"""How a Jacobian over many points is built: the internal primitive behind softmax's rule
(one temporary), the seed rows' dot product as one matrix product, and the API's result
written by the engine in place. Each against NumPy written here or finite differences."""

from __future__ import annotations

import tracemalloc

import numpy as np

import jacli
import jacli.api
from jacli.engine import WarningLog, evaluate
from jacli.prims import NUMERIC, PRIMITIVES


def _central_difference(f, args, k, step=1e-6):
    up = [a.copy() for a in args]
    down = [a.copy() for a in args]
    up[k] += step
    down[k] -= step
    return (f(*up) - f(*down)) / (2 * step)


def test_mul_diff_is_a_times_b_minus_c_and_leaves_its_arguments_alone():
    rng = np.random.default_rng(3)
    a, b, c = (rng.normal(size=(4, 5, 3)) for _ in range(3))
    copies = [a.copy(), b.copy(), c.copy()]
    prim = PRIMITIVES["mul_diff"]
    assert np.array_equal(prim.forward(a, b, c), a * (b - c))
    for given, kept in zip((a, b, c), copies):
        assert np.array_equal(given, kept)
    # broadcast where b - c is smaller than the result (no room to work in place)
    small = rng.normal(size=(1, 5, 1))
    assert np.array_equal(prim.forward(a, small, small[:, :, :1]), a * (small - small))
    assert np.array_equal(prim.forward(a, b[:, :1], c[:1]), a * (b[:, :1] - c[:1]))


def test_mul_diff_partials_match_finite_differences():
    rng = np.random.default_rng(4)
    args = [rng.uniform(-2, 2, 30) for _ in range(3)]
    prim = PRIMITIVES["mul_diff"]
    ans = prim.forward(*args)
    for k in range(3):
        partial = np.broadcast_to(prim.partial(NUMERIC, ans, args, k), ans.shape)
        np.testing.assert_allclose(partial, _central_difference(prim.forward, args, k),
                                   rtol=1e-6, atol=1e-8)


def test_dot_of_seed_rows_against_points_is_numpys():
    rng = np.random.default_rng(5)
    seeds, points = rng.normal(size=(7, 1, 6)), rng.normal(size=(1, 9, 6))
    got = PRIMITIVES["dot"].forward(seeds, points)
    want = np.einsum("ki,bi->kb", seeds[:, 0], points[0])
    assert got.shape == (7, 9)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)


def _softmax_jacobian(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    y = e / e.sum(axis=-1, keepdims=True)
    return y, np.einsum("bi,ij->bij", y, np.eye(x.shape[-1])) - y[:, :, None] * y[:, None, :]


def test_softmax_jacobian_over_many_chunks_both_modes():
    x = np.random.default_rng(6).normal(0, 2, (50, 30))
    program = jacli.compile("y = softmax(x)")
    value, want = _softmax_jacobian(x)
    for mode in ("reverse", "forward"):
        result = program.jacobian({"x": x}, batch=True, mode=mode)
        np.testing.assert_allclose(result.value, value, rtol=1e-13)
        np.testing.assert_allclose(result.jacobian, want, rtol=1e-12, atol=1e-15)


def test_evaluate_writes_the_jacobian_into_the_given_array():
    program = jacli.compile("y = softmax(x)")
    x = np.random.default_rng(7).normal(size=(4, 5))
    program._shape_pass({"x": (5,)})
    out = np.zeros((4, 5, 5))
    sweep = evaluate(program.tape, {"x": x}, 4, program._output_nodes(["y"]), ["x"],
                     WarningLog(), out=out)
    assert sweep.jacobian is out
    np.testing.assert_allclose(out, _softmax_jacobian(x)[1], rtol=1e-12, atol=1e-15)


def test_a_softmax_jacobian_holds_little_beside_its_result():
    # Beside the result (B, n, n), the API holds one chunk's work: the engine writes into
    # the result (no Jacobian of its own per chunk, then copied) and softmax's rule makes
    # one (K, B, n) temporary, not three (g * s, g - <g, s>, s * that).
    n, points = 100, 200
    x = np.random.default_rng(8).normal(size=(points, n))
    program = jacli.compile("y = softmax(x)")
    program.jacobian({"x": x[:2]}, batch=True)
    chunk_points = max(1, jacli.api.JACOBIAN_FLOATS // (n * n))
    chunk_bytes = 8 * n * chunk_points * n
    tracemalloc.start()
    try:
        result = program.jacobian({"x": x}, batch=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.jacobian.shape == (points, n, n)
    beside = peak - result.jacobian.nbytes - result.value.nbytes
    assert beside < 1.5 * chunk_bytes, (beside, chunk_bytes)

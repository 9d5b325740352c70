"""The evaluation engine through the Python API (jacli.compile(...).eval / jacobian /
grad / trace), against formulas derived by hand and written out with NumPy."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import jacli
from jacli import JacliError, api

POLAR = "r = sqrt(x^2 + y^2); theta = atan2(y, x)"


def polar_reference(x, y):
    """Values (..., 2) and Jacobian (..., 2, 2) of (r, theta) by hand."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    r2 = x * x + y * y
    r = np.sqrt(r2)
    value = np.stack([r, np.arctan2(y, x)], axis=-1)
    jac = np.stack([np.stack([x / r, y / r], axis=-1),
                    np.stack([-y / r2, x / r2], axis=-1)], axis=-2)
    return value, jac


@pytest.fixture
def no_python_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# --- single points ---------------------------------------------------------------------------

def test_gradient_of_readme_example(no_python_warnings):
    r = jacli.compile("x^2*y + sin(z)").grad({"x": 1, "y": 2, "z": 3})
    assert r.inputs == ["x", "y", "z"]
    assert r.outputs == ["f1"]
    assert r.value.shape == (1,)
    assert r.value[0] == pytest.approx(2 + math.sin(3), rel=1e-15)
    assert r.gradient.shape == (3,)
    np.testing.assert_allclose(r.gradient, [4.0, 1.0, math.cos(3)], rtol=1e-15)
    assert r.warnings == []


def test_polar_jacobian(no_python_warnings):
    r = jacli.compile(POLAR).jacobian({"x": 3.0, "y": 4.0})
    assert r.outputs == ["r", "theta"]
    assert r.inputs == ["x", "y"]
    np.testing.assert_allclose(r.value, [5.0, math.atan2(4, 3)], rtol=1e-15)
    np.testing.assert_allclose(r.jacobian, [[0.6, 0.8], [-0.16, 0.12]], rtol=1e-14)


def test_gradient_needs_exactly_one_output():
    r = jacli.compile(POLAR).jacobian({"x": 3.0, "y": 4.0})
    with pytest.raises(ValueError):
        r.gradient
    with pytest.raises(JacliError):
        jacli.compile(POLAR).grad({"x": 3.0, "y": 4.0})
    g = jacli.compile(POLAR).grad({"x": 3.0, "y": 4.0}, output="theta")
    np.testing.assert_allclose(g.gradient, [-0.16, 0.12], rtol=1e-14)


@pytest.mark.parametrize("src, point, grad", [
    ("exp(x)*cos(y)", dict(x=0.5, y=1.2),
     [math.exp(0.5) * math.cos(1.2), -math.exp(0.5) * math.sin(1.2)]),
    ("x/y", dict(x=3.0, y=4.0), [0.25, -3.0 / 16]),
    ("log(x*y)", dict(x=2.0, y=5.0), [0.5, 0.2]),
    ("hypot(x, y)", dict(x=3.0, y=4.0), [0.6, 0.8]),
    ("pow(x, y)", dict(x=2.0, y=3.0), [12.0, 8 * math.log(2)]),
    ("tanh(x)^2 + sinh(y)", dict(x=0.3, y=-0.4),
     [2 * math.tanh(0.3) * (1 - math.tanh(0.3) ** 2), math.cosh(-0.4)]),
    ("sqrt(1 + x^2) - acosh(y)", dict(x=0.75, y=2.0),
     [0.75 / math.sqrt(1 + 0.5625), -1 / math.sqrt(3)]),
])
def test_gradients_against_hand_formulas(src, point, grad, no_python_warnings):
    r = jacli.compile(src).grad(point)
    np.testing.assert_allclose(r.gradient, grad, rtol=1e-13)
    assert r.warnings == []


# --- batches ------------------------------------------------------------------------------

def test_batch_shapes_and_values(no_python_warnings):
    xs = np.array([3.0, 1.0, -2.0, 0.5])
    ys = np.array([4.0, 1.0, 0.5, -3.0])
    p = jacli.compile(POLAR)
    r = p.jacobian({"x": xs, "y": ys})
    assert r.value.shape == (4, 2)
    assert r.jacobian.shape == (4, 2, 2)
    value, jac = polar_reference(xs, ys)
    np.testing.assert_allclose(r.value, value, rtol=1e-14)
    np.testing.assert_allclose(r.jacobian, jac, rtol=1e-14)
    e = p.eval({"x": xs, "y": ys})
    assert e.value.shape == (4, 2)
    assert e.jacobian is None
    np.testing.assert_allclose(e.value, value, rtol=1e-14)


def test_scalar_point_has_no_batch_axis():
    p = jacli.compile(POLAR)
    assert p.eval({"x": 3.0, "y": 4.0}).value.shape == (2,)
    assert p.jacobian({"x": 3.0, "y": 4.0}).jacobian.shape == (2, 2)
    g = jacli.compile("x*y").grad({"x": 2.0, "y": 5.0})
    assert g.value.shape == (1,) and g.gradient.shape == (2,)
    gb = jacli.compile("x*y").grad({"x": [2.0, 3.0], "y": [5.0, 7.0]})
    assert gb.value.shape == (2, 1) and gb.gradient.shape == (2, 2)
    np.testing.assert_array_equal(gb.gradient, [[5.0, 2.0], [7.0, 3.0]])


def test_batch_of_one_keeps_the_batch_axis():
    r = jacli.compile(POLAR).jacobian({"x": [3.0], "y": [4.0]})
    assert r.value.shape == (1, 2)
    assert r.jacobian.shape == (1, 2, 2)


def test_scalar_parameters_broadcast_over_the_batch(no_python_warnings):
    xs = np.linspace(-2.0, 2.0, 7)
    r = jacli.compile("a*x^2 + b").jacobian({"x": xs, "a": 3.0, "b": -1.0})
    assert r.inputs == ["a", "x", "b"]
    assert r.value.shape == (7, 1)
    assert r.jacobian.shape == (7, 1, 3)
    np.testing.assert_allclose(r.value[:, 0], 3 * xs ** 2 - 1, rtol=1e-15)
    np.testing.assert_allclose(r.jacobian[:, 0, 0], xs ** 2, rtol=1e-15)
    np.testing.assert_allclose(r.jacobian[:, 0, 1], 6 * xs, rtol=1e-15)
    np.testing.assert_allclose(r.jacobian[:, 0, 2], np.ones(7), rtol=1e-15)


def test_mismatched_batch_lengths_are_an_error():
    with pytest.raises(JacliError):
        jacli.compile("x + y").eval({"x": [1.0, 2.0], "y": [1.0, 2.0, 3.0]})


def test_missing_value_is_an_error():
    with pytest.raises(JacliError) as info:
        jacli.compile("x + y").eval({"x": 1.0})
    assert "y" in info.value.message


# --- wrt, parameters, outputs -----------------------------------------------------------

def test_wrt_subset_and_reordering():
    p = jacli.compile("x^2*y + sin(z)")
    point = {"x": 1.0, "y": 2.0, "z": 3.0}
    full = [4.0, 1.0, math.cos(3)]
    r = p.grad(point, wrt=["z", "x"])
    assert r.inputs == ["z", "x"]
    np.testing.assert_allclose(r.gradient, [full[2], full[0]], rtol=1e-15)
    r = p.grad(point, wrt=["y"])
    assert r.inputs == ["y"]
    np.testing.assert_allclose(r.gradient, [1.0], rtol=1e-15)
    r = p.jacobian(point, wrt=["y", "z", "x"])
    np.testing.assert_allclose(r.jacobian, [[full[1], full[2], full[0]]], rtol=1e-15)
    r = jacli.compile(POLAR).jacobian({"x": 3.0, "y": 4.0}, wrt=["y", "x"])
    np.testing.assert_allclose(r.jacobian, [[0.8, 0.6], [0.12, -0.16]], rtol=1e-14)


def test_wrt_unknown_or_repeated_name_is_an_error():
    p = jacli.compile("x*y")
    with pytest.raises(JacliError):
        p.grad({"x": 1.0, "y": 2.0}, wrt=["q"])
    with pytest.raises(JacliError):
        p.grad({"x": 1.0, "y": 2.0}, wrt=["x", "x"])


def test_parameters_are_evaluated_not_differentiated(no_python_warnings):
    p = jacli.compile("a*x^2 + exp(b*x)")
    r = p.grad({"a": 3.0, "b": 0.5, "x": 2.0}, wrt=["x"])
    assert r.inputs == ["x"]
    assert r.gradient.shape == (1,)
    assert r.value[0] == pytest.approx(12.0 + math.e, rel=1e-15)
    assert r.gradient[0] == pytest.approx(12.0 + 0.5 * math.e, rel=1e-15)
    # batched x, scalar parameters
    xs = np.array([0.0, 1.0, 2.0])
    rb = p.grad({"a": 3.0, "b": 0.5, "x": xs}, wrt=["x"])
    np.testing.assert_allclose(rb.gradient[:, 0], 6 * xs + 0.5 * np.exp(0.5 * xs), rtol=1e-15)


def test_output_selection():
    p = jacli.compile(POLAR)
    point = {"x": 3.0, "y": 4.0}
    r = p.jacobian(point, outputs=["theta"])
    assert r.outputs == ["theta"]
    np.testing.assert_allclose(r.value, [math.atan2(4, 3)], rtol=1e-15)
    np.testing.assert_allclose(r.jacobian, [[-0.16, 0.12]], rtol=1e-14)
    r = p.eval(point, outputs=["theta", "r"])
    assert r.outputs == ["theta", "r"]
    np.testing.assert_allclose(r.value, [math.atan2(4, 3), 5.0], rtol=1e-15)
    with pytest.raises(JacliError):
        p.eval(point, outputs=["nope"])


def test_selected_output_needs_only_its_own_variables():
    p = jacli.compile("a = x + 1\nb = y * 2")
    r = p.jacobian({"x": 4.0}, outputs=["a"], wrt=["x"])
    np.testing.assert_allclose(r.value, [5.0])
    np.testing.assert_allclose(r.jacobian, [[1.0]])


def test_output_not_depending_on_an_input_has_zero_derivative():
    p = jacli.compile("a = x + 1\nb = y * 2\nc = 7")
    r = p.jacobian({"x": 4.0, "y": 1.5})
    assert r.inputs == ["x", "y"]
    np.testing.assert_array_equal(r.value, [5.0, 3.0, 7.0])
    np.testing.assert_array_equal(r.jacobian, [[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])


# --- large batches -----------------------------------------------------------------------

def test_batches_larger_than_a_chunk(no_python_warnings):
    n = max(100_000, 3 * api.CHUNK + 17)
    assert n > api.CHUNK and n % api.CHUNK != 0
    rng = np.random.default_rng(7)
    xs = rng.uniform(-5, 5, n)
    ys = rng.uniform(-5, 5, n)
    ys[np.abs(ys) < 1e-3] = 1.0
    r = jacli.compile(POLAR).jacobian({"x": xs, "y": ys})
    value, jac = polar_reference(xs, ys)
    assert r.value.shape == (n, 2) and r.jacobian.shape == (n, 2, 2)
    np.testing.assert_allclose(r.value, value, rtol=1e-13)
    np.testing.assert_allclose(r.jacobian, jac, rtol=1e-12)
    # per-point spot checks on both sides of every chunk boundary
    for i in [0, api.CHUNK - 1, api.CHUNK, 2 * api.CHUNK, n - 1]:
        x, y = xs[i], ys[i]
        rr = math.hypot(x, y)
        np.testing.assert_allclose(r.jacobian[i], [[x / rr, y / rr],
                                                   [-y / rr ** 2, x / rr ** 2]], rtol=1e-12)


def test_large_batch_with_scalar_parameter(no_python_warnings):
    n = 2 * api.CHUNK + 5
    xs = np.linspace(-3, 3, n)
    r = jacli.compile("softplus(k*x)").grad({"x": xs, "k": 2.0})
    # d/dx softplus(kx) = k sigmoid(kx); d/dk = x sigmoid(kx)
    sig = 1 / (1 + np.exp(-2 * xs))
    np.testing.assert_allclose(r.value[:, 0], np.log1p(np.exp(2 * xs)), rtol=1e-13)
    assert r.inputs == ["k", "x"]
    np.testing.assert_allclose(r.gradient, np.stack([xs * sig, 2 * sig], axis=-1),
                               rtol=1e-12, atol=1e-300)


# --- floating-point domain errors ----------------------------------------------------------

def test_log_of_negative_is_nan_with_a_domain_warning(no_python_warnings):
    r = jacli.compile("log(x)").grad({"x": -1.0})
    assert math.isnan(r.value[0])
    assert r.warnings, "expected a DomainWarning"
    assert any(w.op == "log" for w in r.warnings)
    assert any("log" in w.message("log(x)") for w in r.warnings)


def test_domain_warnings_name_the_operation(no_python_warnings):
    r = jacli.compile("sqrt(x)").eval({"x": -1.0})
    assert math.isnan(r.value[0])
    assert [w.op for w in r.warnings] == ["sqrt"]
    r = jacli.compile("1/x").eval({"x": 0.0})
    assert r.value[0] == math.inf
    assert [w.op for w in r.warnings] == ["div"]
    r = jacli.compile("exp(x)").eval({"x": 1000.0})
    assert r.value[0] == math.inf
    assert [w.op for w in r.warnings] == ["exp"]


def test_domain_warning_in_a_batch_keeps_other_points(no_python_warnings):
    r = jacli.compile("log(x)").grad({"x": np.array([1.0, -1.0, math.e])})
    assert r.value[0, 0] == 0.0 and math.isnan(r.value[1, 0]) and r.value[2, 0] == 1.0
    np.testing.assert_allclose(r.gradient[[0, 2], 0], [1.0, 1 / math.e], rtol=1e-15)
    assert any(w.op == "log" for w in r.warnings)


def test_domain_warnings_are_reported_once_per_operation(no_python_warnings):
    r = jacli.compile("log(x) + log(y)").eval({"x": np.full(5, -1.0), "y": np.full(5, -2.0)})
    assert len([w for w in r.warnings if w.op == "log"]) == 1


def test_square_of_negative_needs_no_log(no_python_warnings):
    # d/dx x^2 at -1: the exponent is a constant, so pow's log(x) rule must not run.
    r = jacli.compile("x^2").grad({"x": -1.0})
    assert r.value.tolist() == [1.0]
    assert r.gradient.tolist() == [-2.0]
    assert r.warnings == []


def test_exponent_that_is_a_parameter_is_not_differentiated(no_python_warnings):
    r = jacli.compile("x^n").grad({"x": -2.0, "n": 3.0}, wrt=["x"])
    assert r.value.tolist() == [-8.0]
    assert r.gradient.tolist() == [12.0]
    assert r.warnings == []


def test_differentiating_the_exponent_at_a_negative_base_warns(no_python_warnings):
    # d/dn x^n = x^n log(x): undefined (nan) for x < 0, with a warning naming pow.
    r = jacli.compile("x^n").grad({"x": -2.0, "n": 3.0})
    assert r.gradient[0] == 12.0
    assert math.isnan(r.gradient[1])
    assert any(w.op == "pow" for w in r.warnings)


def test_unselected_output_is_not_evaluated(no_python_warnings):
    p = jacli.compile("a = log(x)\nb = x^2")
    r = p.grad({"x": -1.0}, output="b")
    assert r.gradient.tolist() == [-2.0]
    assert r.warnings == []


# --- repeated arguments and shared nodes -----------------------------------------------------

@pytest.mark.parametrize("src, x, value, grad", [
    ("x*x", 3.0, 9.0, 6.0),
    ("x*x*x", 2.0, 8.0, 12.0),
    ("x+x", 3.0, 6.0, 2.0),
    ("x-x", 3.0, 0.0, 0.0),
    ("x/x", 3.0, 1.0, 0.0),
    ("let s = x\ns*s", 3.0, 9.0, 6.0),
    ("sin(x)*sin(x)", 0.7, math.sin(0.7) ** 2, 2 * math.sin(0.7) * math.cos(0.7)),
    ("let t = x^2\nt + t*t", 1.5, 2.25 + 2.25 ** 2, 3.0 + 4 * 1.5 ** 3),
    ("hypot(x, x)", 2.0, 2.0 * math.sqrt(2), math.sqrt(2)),
    ("max(x, x)", 2.0, 2.0, 1.0),
])
def test_repeated_arguments_accumulate(src, x, value, grad, no_python_warnings):
    r = jacli.compile(src).grad({"x": x})
    assert r.value[0] == pytest.approx(value, rel=1e-15, abs=1e-15)
    assert r.gradient[0] == pytest.approx(grad, rel=1e-14, abs=1e-15)


# --- trace ---------------------------------------------------------------------------------

def test_trace_matches_the_jacobian_and_hand_values(no_python_warnings):
    p = jacli.compile(POLAR)
    point = {"x": 3.0, "y": 4.0}
    t = p.trace(point)
    assert t.inputs == ["x", "y"] and t.outputs == ["r", "theta"]
    np.testing.assert_allclose(t.jacobian, [[0.6, 0.8], [-0.16, 0.12]], rtol=1e-14)
    np.testing.assert_allclose(t.jacobian, p.jacobian(point).jacobian, rtol=1e-15)
    np.testing.assert_allclose([t.values[n] for n in t.output_nodes],
                               [5.0, math.atan2(4, 3)], rtol=1e-15)


@pytest.mark.parametrize("src, point, wrt", [
    (POLAR, {"x": 3.0, "y": 4.0}, None),
    ("x^2*y + sin(z)", {"x": 1.0, "y": 2.0, "z": 3.0}, None),
    ("x^2*y + sin(z)", {"x": 1.0, "y": 2.0, "z": 3.0}, ["z", "x"]),
    ("let s = exp(a) + exp(b)\np = exp(a)/s\nq = exp(b)/s", {"a": 0.3, "b": -1.2}, None),
    ("x*x + max(x, 2*x) * y", {"x": 1.5, "y": -0.5}, None),
])
def test_trace_adjoints_are_consistent(src, point, wrt, no_python_warnings):
    p = jacli.compile(src)
    t = p.trace(point, wrt=wrt)
    api_jac = p.jacobian(point, wrt=wrt).jacobian
    np.testing.assert_allclose(t.jacobian, api_jac, rtol=1e-14)
    nodes = t.tape.nodes
    for k, root in enumerate(t.output_nodes):
        adjoints = t.adjoints[k]
        assert adjoints[root] == 1.0
        # Adjoints of the variable nodes are the gradient of output k.
        for j, name in enumerate(t.inputs):
            a = adjoints[t.tape.variable_nodes[name]]
            assert (0.0 if a is None else a) == pytest.approx(api_jac[k, j], rel=1e-14,
                                                              abs=1e-15)
        # Every other adjoint is the sum over its consumers of adjoint * local partial.
        for i in range(len(nodes)):
            if i == root:
                continue
            total, seen = 0.0, False
            for c in range(i + 1, root + 1):
                if adjoints[c] is None:
                    continue
                for pos, arg in enumerate(nodes[c].args):
                    if arg == i and (c, pos) in t.partials:
                        total += adjoints[c] * t.partials[(c, pos)]
                        seen = True
            if adjoints[i] is None:
                assert not seen or total == 0.0
            else:
                assert adjoints[i] == pytest.approx(total, rel=1e-14, abs=1e-15)


def test_trace_of_the_readme_example_by_hand():
    t = jacli.compile("x^2*y + sin(z)").trace({"x": 1.0, "y": 2.0, "z": 3.0})
    np.testing.assert_allclose(t.jacobian, [[4.0, 1.0, math.cos(3)]], rtol=1e-15)
    adj = t.adjoints[0]
    for name, expected in [("x", 4.0), ("y", 1.0), ("z", math.cos(3))]:
        assert adj[t.tape.variable_nodes[name]] == pytest.approx(expected, rel=1e-15)


def test_trace_refuses_several_points():
    with pytest.raises(JacliError):
        jacli.compile("x").trace({"x": [1.0, 2.0]})

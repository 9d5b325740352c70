"""Derivative warnings name the entry whose partial produced the non-finite value, in
every mode and command (issue 12, items 2 and 3), and never leak as raw NumPy warnings.

Each program has exactly one entry to blame, found by hand: sqrt'(0) = 0.5/0 is a pole,
acos'(1) = -1/sqrt(0) is a pole, atan2's partials at (0, 0) are 0/0. Where the chain rule
then meets a 0 (inf * 0 = nan) the entry it passes through is named as the chain rule's,
never as a derivative of its own.
"""

from __future__ import annotations

import warnings

import pytest

import jacli

POLE = "division by zero or a pole (result is inf or -inf)"
NAN = "invalid value (result is nan)"


@pytest.fixture(autouse=True)
def no_python_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def blamed(source: str, result) -> list[tuple[str, str, str]]:
    """(what, kind, source text) of each warning, e.g. ("derivative of sqrt", POLE, "sqrt(x)")."""
    out = []
    for w in result.warnings:
        what = ("chain rule through " if w.in_chain else
                "derivative of " if w.in_derivative else "") + w.op
        out.append((what, w.kind, source[w.span[0]:w.span[1]] if w.span else ""))
    return out


SQRT = "sin(y) + sqrt(x)"           # d/dx at x = 0 is inf, from sqrt alone
ACOS = "t = acos(z); u = z^2"       # dt/dz at z = 1 is -inf, from acos alone


@pytest.mark.parametrize("run", [
    lambda p: p.grad({"x": 0.0, "y": 1.0}),
    lambda p: p.jacobian({"x": 0.0, "y": 1.0}, mode="reverse"),
    lambda p: p.jacobian({"x": 0.0, "y": 1.0}, mode="forward"),
    lambda p: p.jvp({"x": 0.0, "y": 1.0}, {"x": 1.0, "y": 1.0}),
    lambda p: p.vjp({"x": 0.0, "y": 1.0}, {"f1": 1.0}),
    lambda p: p.hessian({"x": 0.0, "y": 1.0}),
    lambda p: p.trace({"x": 0.0, "y": 1.0}),
], ids=["grad", "jac-reverse", "jac-forward", "jvp", "vjp", "hess", "tape"])
def test_the_pole_of_sqrt_is_blamed_on_sqrt_in_every_mode(run):
    result = run(jacli.compile(SQRT))
    assert blamed(SQRT, result) == [("derivative of sqrt", POLE, "sqrt(x)")]


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_the_pole_of_acos_is_blamed_on_acos_not_on_a_later_entry(mode):
    result = jacli.compile(ACOS).jacobian({"z": 1.0}, mode=mode)
    assert result.jacobian.tolist() == [[float("-inf")], [2.0]]
    assert blamed(ACOS, result) == [("derivative of acos", POLE, "acos(z)")]


def test_the_pole_of_acos_in_jvp_vjp_and_the_tape():
    program = jacli.compile(ACOS)
    for result in (program.jvp({"z": 1.0}, {"z": 1.0}),
                   program.vjp({"z": 1.0}, {"t": 1.0, "u": 1.0}),
                   program.trace({"z": 1.0})):
        assert blamed(ACOS, result) == [("derivative of acos", POLE, "acos(z)")]


@pytest.mark.parametrize("mode, meeting", [("reverse", ("pow", "x^2")),
                                           ("forward", ("sqrt", "sqrt(x^2)"))])
def test_sqrt_of_a_square_blames_sqrt_and_says_where_inf_met_zero(mode, meeting):
    # d/dx sqrt(x^2) at 0: sqrt'(0) = inf (sqrt's pole) and (x^2)' = 0 make inf * 0 = nan:
    # in reverse mode when sqrt's adjoint inf passes through x^2, in forward mode when
    # x^2's tangent 0 passes through sqrt.
    source = "sqrt(x^2)"
    result = jacli.compile(source).jacobian({"x": 0.0}, mode=mode)
    assert blamed(source, result) == [("derivative of sqrt", POLE, "sqrt(x^2)"),
                                      (f"chain rule through {meeting[0]}", NAN, meeting[1])]


def test_hessian_blames_the_rule_that_built_the_failing_node():
    # The gradient of sqrt(x^2) is built as nodes (0.5/sqrt(x^2) * 2x ...): a warning in
    # one of them is the derivative of the entry whose rule built it, not a `div`.
    source = "sqrt(x^2)"
    result = jacli.compile(source).hessian({"x": 0.0})
    found = blamed(source, result)
    assert found[0] == ("derivative of sqrt", POLE, "sqrt(x^2)")
    assert all(what.startswith(("derivative of ", "chain rule through ")) for what, _, _ in found)
    assert "derivative of pow" not in [what for what, _, _ in found]


def test_polar_at_the_origin_blames_sqrt_and_atan2():
    source = "r = sqrt(x^2 + y^2)\ntheta = atan2(y, x)"
    for mode in ("reverse", "forward"):
        found = blamed(source, jacli.compile(source).jacobian({"x": 0.0, "y": 0.0}, mode=mode))
        derivatives = {(what, text) for what, _, text in found if what.startswith("derivative")}
        assert derivatives == {("derivative of sqrt", "sqrt(x^2 + y^2)"),
                               ("derivative of atan2", "atan2(y, x)")}


# --- through the command line: one message per warning, no NumPy text ----------------------------

@pytest.mark.parametrize("args", [
    ["grad", SQRT, "--at", "x=0,y=1"],
    ["jac", SQRT, "--at", "x=0,y=1", "--mode", "forward"],
    ["jvp", SQRT, "--at", "x=0,y=1", "--tangent", "x=1,y=1"],
    ["vjp", SQRT, "--at", "x=0,y=1", "--cotangent", "f1=1"],
    ["hess", SQRT, "--at", "x=0,y=1"],
    ["tape", SQRT, "--at", "x=0,y=1"],
    ["tape", SQRT, "--at", "x=0,y=1", "--format", "json"],
    ["tape", SQRT, "--at", "x=0,y=1", "--explain"],
    ["tape", SQRT, "--at", "x=0,y=1", "--explain", "--format", "json"],
], ids=lambda a: " ".join(a[i] for i in (0, *range(4, len(a)))))
def test_every_command_prints_the_one_warning(args, invoke_jacli):
    code, _, err = invoke_jacli(*args)
    assert code == 0
    assert err == ("jacli: warning: derivative of sqrt: division by zero or a pole "
                   "(result is inf or -inf) in `sqrt(x)` at 1:10\n")


def test_tape_in_a_real_process_prints_no_numpy_warning(run_jacli):
    # A NumPy RuntimeWarning would name a file of jacli's and its source line. (The
    # in-process runs above turn any Python warning into an error, for every format.)
    code, out, err = run_jacli("tape", "sqrt(x)", "--at", "x=0", "--explain")
    assert code == 0 and out
    assert err == ("jacli: warning: derivative of sqrt: division by zero or a pole "
                   "(result is inf or -inf) in `sqrt(x)` at 1:1\n")

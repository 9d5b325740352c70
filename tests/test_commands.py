"""The newer commands through the command line: hess, jac --mode, jvp, vjp, check, graph
and tape --explain.

Every expected number comes from outside jacli: a closed form derived by hand (written
out here in NumPy/math), central differences of plain evaluation, or the arithmetic of
the numbers the explanation itself prints (its contributions must add up to its adjoints
and its gradient). Most commands run in process (invoke_jacli); the acceptance line and
the graph's byte-identity run as real subprocesses (run_jacli).
"""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import jacli
from conftest import invoke_jacli, run_jacli, sample_path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"


def floats(text: str) -> list[float]:
    return [float(t) for t in text.split()]


def records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def ok(*args: str) -> str:
    """Standard output of a command that must succeed silently."""
    code, out, err = invoke_jacli(*args)
    assert code == 0, err
    assert err == ""
    return out


def assert_close(got, expected, rtol=1e-15, atol=0.0):
    np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(expected, dtype=float),
                               rtol=rtol, atol=atol)


# --- hess ------------------------------------------------------------------------------------

HESS_PROGRAM = "x^2*y + sin(z)"


def hess_ref(x, y, z):
    """f = x^2 y + sin z: value, gradient and Hessian, by hand."""
    value = x * x * y + math.sin(z)
    gradient = [2 * x * y, x * x, math.cos(z)]
    hessian = [[2 * y, 2 * x, 0.0], [2 * x, 0.0, 0.0], [0.0, 0.0, -math.sin(z)]]
    return value, gradient, hessian


def test_hess_acceptance_line_piped():
    code, out, err = run_jacli("hess", HESS_PROGRAM, "--at", "x=1,y=2,z=3")
    assert code == 0, err
    assert err == ""
    assert len(out.splitlines()) == 1
    got = floats(out)
    assert len(got) == 9
    assert_close(got, [4.0, 2.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, -0.1411200080598672])
    assert_close(got, np.ravel(hess_ref(1.0, 2.0, 3.0)[2]))


def test_hess_json_has_value_gradient_and_hessian():
    x, y, z = 0.5, -1.5, 0.2
    (record,) = records(ok("hess", HESS_PROGRAM, "--at", f"x={x},y={y},z={z}",
                           "--format", "json"))
    value, gradient, hessian = hess_ref(x, y, z)
    assert record["inputs"] == ["x", "y", "z"]
    assert record["outputs"] == ["f1"]
    assert isinstance(record["value"], float)            # a number for hess, not a list
    assert_close(record["value"], value, 1e-15)
    assert_close(record["gradient"], gradient, 1e-15)
    assert len(record["hessian"]) == 3 and all(len(row) == 3 for row in record["hessian"])
    assert_close(record["hessian"], hessian, 1e-15)
    assert "jacobian" not in record


def test_hess_csv_header_and_row():
    out = ok("hess", HESS_PROGRAM, "--at", "x=1,y=2,z=3", "--format", "csv")
    header, row, *rest = out.splitlines()
    assert rest == []
    second = [f"d2f1/d{a}d{b}" for a in "xyz" for b in "xyz"]
    assert header.split(",") == (["x", "y", "z", "f1", "df1/dx", "df1/dy", "df1/dz"] + second)
    value, gradient, hessian = hess_ref(1.0, 2.0, 3.0)
    assert_close([float(v) for v in row.split(",")],
                 [1.0, 2.0, 3.0, value, *gradient, *np.ravel(hessian)], 1e-15)


def test_hess_npy_is_points_by_n_by_n(tmp_path):
    points = [(0.5, -1.0, 0.25), (1.0, 2.0, 3.0), (-1.5, 0.0, -2.0), (2.0, 0.5, 1.0)]
    csv = tmp_path / "points.csv"
    csv.write_text("id,x,y,z\n" + "".join(f"{k},{x!r},{y!r},{z!r}\n"
                                         for k, (x, y, z) in enumerate(points)))
    target = tmp_path / "H.npy"
    ok("hess", HESS_PROGRAM, "--points", str(csv), "-o", str(target))
    array = np.load(target)
    assert array.shape == (len(points), 3, 3)
    assert_close(array, [hess_ref(*p)[2] for p in points], 1e-15)


def test_hess_with_wrt_treats_the_rest_as_parameters():
    (record,) = records(ok("hess", HESS_PROGRAM, "--wrt", "y,x", "--at", "x=1.5,y=-2,z=0.3",
                           "--format", "json"))
    assert record["inputs"] == ["y", "x"]
    # d2f/dy2 = 0, d2f/dydx = 2x, d2f/dx2 = 2y
    assert_close(record["hessian"], [[0.0, 3.0], [3.0, -4.0]])
    assert_close(record["gradient"], [1.5 ** 2, 2 * 1.5 * -2])


def test_hess_needs_one_output():
    code, out, err = invoke_jacli("hess", "a = x^2; b = x^3", "--at", "x=2")
    assert code == 2
    assert out == ""
    assert "--out" in err and "Traceback" not in err
    assert floats(ok("hess", "a = x^2; b = x^3", "--at", "x=2", "--out", "b")) == [12.0]


# --- jac --mode --------------------------------------------------------------------------------

def robot_arm_ref(q1, q2, l1, l2):
    s1, c1, s12, c12 = math.sin(q1), math.cos(q1), math.sin(q1 + q2), math.cos(q1 + q2)
    return [[-l1 * s1 - l2 * s12, -l2 * s12], [l1 * c1 + l2 * c12, l2 * c12]]


@pytest.mark.parametrize("args, expected", [
    (("-f", str(SAMPLES / "robot_arm.jac"), "--wrt", "q1,q2",
      "--at", "q1=0.5,q2=1.0,l1=1,l2=0.8"), robot_arm_ref(0.5, 1.0, 1.0, 0.8)),
    # fewer inputs than outputs (auto: forward)
    (("u = x^2; v = x^3; w = sin(x)", "--at", "x=2"), [[4.0], [12.0], [math.cos(2.0)]]),
    # more inputs than outputs (auto: reverse)
    (("x*y*z + exp(x)", "--at", "x=0.5,y=2,z=-3"),
     [[2 * -3 + math.exp(0.5), 0.5 * -3, 0.5 * 2]]),
], ids=["robot_arm", "one-input", "one-output"])
def test_jac_modes_give_the_same_numbers(args, expected):
    results = {}
    for mode in ("forward", "reverse", "auto"):
        (record,) = records(ok("jac", *args, "--mode", mode, "--format", "json"))
        assert_close(record["jacobian"], expected, 1e-14, 1e-15)
        results[mode] = np.array(record["jacobian"])
        assert floats(ok("jac", *args, "--mode", mode)) == np.ravel(results[mode]).tolist()
    assert_close(results["forward"], results["reverse"], 1e-15)
    assert_close(results["auto"], results["reverse"], 1e-15)


def test_jac_unknown_mode_is_a_usage_error():
    code, _, err = invoke_jacli("jac", "x*y", "--at", "x=1,y=2", "--mode", "sideways")
    assert code == 2
    assert "--mode" in err


# --- jvp and vjp (polar coordinates at (3, 4), r = 5) ---------------------------------------

POLAR = str(SAMPLES / "polar.jac")
POLAR_J = np.array([[3 / 5, 4 / 5], [-4 / 25, 3 / 25]])     # d(r, theta) / d(x, y)


@pytest.mark.parametrize("tangent, v", [
    ("x=1,y=2", [1.0, 2.0]), ("x=1", [1.0, 0.0]), ("y=1", [0.0, 1.0]), ("x=-0.5,y=3", [-0.5, 3])])
def test_jvp_plain_and_json(tangent, v):
    expected = POLAR_J @ np.array(v)
    plain = floats(ok("jvp", "-f", POLAR, "--at", "x=3,y=4", "--tangent", tangent))
    assert len(plain) == 2
    assert_close(plain, expected, 1e-15, 1e-16)
    (record,) = records(ok("jvp", "-f", POLAR, "--at", "x=3,y=4", "--tangent", tangent,
                           "--format", "json"))
    assert record["outputs"] == ["r", "theta"]
    assert isinstance(record["jvp"], list) and len(record["jvp"]) == 2
    assert_close(record["jvp"], expected, 1e-15, 1e-16)
    assert_close(record["value"], [5.0, math.atan2(4, 3)])


@pytest.mark.parametrize("cotangent, u", [
    ("r=1,theta=2", [1.0, 2.0]), ("r=1", [1.0, 0.0]), ("theta=1", [0.0, 1.0]),
    ("r=0.25,theta=-4", [0.25, -4.0])])
def test_vjp_plain_and_json(cotangent, u):
    expected = np.array(u) @ POLAR_J
    plain = floats(ok("vjp", "-f", POLAR, "--at", "x=3,y=4", "--cotangent", cotangent))
    assert len(plain) == 2
    assert_close(plain, expected, 1e-15, 1e-16)
    (record,) = records(ok("vjp", "-f", POLAR, "--at", "x=3,y=4", "--cotangent", cotangent,
                           "--format", "json"))
    assert record["inputs"] == ["x", "y"]
    assert isinstance(record["vjp"], list) and len(record["vjp"]) == 2
    assert_close(record["vjp"], expected, 1e-15, 1e-16)


def test_vjp_list_has_n_entries_and_jvp_m():
    program = "a = x*y*z; b = x + y + z"        # m = 2, n = 3
    at = "x=1,y=2,z=3"
    jvp = floats(ok("jvp", program, "--at", at, "--tangent", "x=1,y=1,z=1"))
    assert jvp == [2 * 3 + 1 * 3 + 1 * 2, 3.0]
    vjp = floats(ok("vjp", program, "--at", at, "--cotangent", "a=1,b=-1"))
    assert vjp == [6.0 - 1, 3.0 - 1, 2.0 - 1]


@pytest.mark.parametrize("command, option", [("jvp", "--tangent"), ("vjp", "--cotangent")])
def test_jvp_vjp_without_seed_is_a_usage_error(command, option):
    code, out, err = invoke_jacli(command, "-f", POLAR, "--at", "x=3,y=4")
    assert code == 2
    assert out == ""
    assert option in err and "Traceback" not in err


@pytest.mark.parametrize("command, seed", [("jvp", "--tangent=q=1"), ("vjp", "--cotangent=q=1")])
def test_jvp_vjp_seed_naming_nothing_is_a_usage_error(command, seed):
    code, _, err = invoke_jacli(command, "-f", POLAR, "--at", "x=3,y=4", seed)
    assert code == 2
    assert "'q'" in err


# --- check ----------------------------------------------------------------------------------

def test_check_relu_at_its_kink_fails_and_says_why():
    code, _, err = invoke_jacli("check", "relu(x)", "--at", "x=0")
    assert code == 1
    assert "kink" in err


def test_check_json_parses_with_ok_and_max_abs_error():
    (good,) = records(ok("check", HESS_PROGRAM, "--at", "x=1,y=2,z=3", "--format", "json"))
    assert good["ok"] is True
    assert isinstance(good["max_abs_error"], float) and 0 <= good["max_abs_error"] < 1e-7
    code, out, _ = invoke_jacli("check", "relu(x)", "--at", "x=0", "--format", "json")
    assert code == 1
    (bad,) = records(out)
    assert bad["ok"] is False
    # relu'(0) = 0 by convention, the central difference sees 1/2.
    assert abs(bad["max_abs_error"] - 0.5) < 1e-6


def _header_commands():
    """The `jacli grad ...` / `jacli jac ...` commands in the samples' header comments,
    as argument lists with the sample paths made absolute."""
    found = []
    for path in sorted(SAMPLES.glob("*.jac")):
        for line in path.read_text().splitlines():
            match = re.match(r"#\s+jacli\s+((?:grad|jac)\s.*)$", line)
            if match:
                args = [sample_path(a) for a in shlex.split(match.group(1))]
                found.append(pytest.param(args, id=f"{path.stem}-{len(found)}"))
    return found


HEADER_COMMANDS = _header_commands()


def test_every_sample_has_a_header_command():
    names = {Path(p.values[0][2]).name for p in HEADER_COMMANDS}
    assert names == {p.name for p in SAMPLES.glob("*.jac")}


def _without_format(args: list[str]) -> list[str]:
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a == "--format":
            skip = True
        else:
            out.append(a)
    return out


@pytest.mark.parametrize("args", HEADER_COMMANDS)
def test_check_passes_on_every_sample(args):
    code, out, err = invoke_jacli("check", *_without_format(args[1:]))
    assert code == 0, out + err
    code, out, err = invoke_jacli("check", *_without_format(args[1:]), "--format", "json")
    assert code == 0, err
    for record in records(out):
        assert record["ok"] is True
        assert record["max_abs_error"] < 1e-5


# --- graph ------------------------------------------------------------------------------------

def test_graph_dot_is_byte_identical_across_runs_and_valid(monkeypatch):
    outputs = []
    for seed in ("1", "2"):     # string hashing differs between the two processes
        monkeypatch.setenv("PYTHONHASHSEED", seed)
        code, out, err = run_jacli("graph", "-f", str(SAMPLES / "softmax.jac"),
                                   "--format", "dot")
        assert code == 0, err
        outputs.append(out)
    assert outputs[0] == outputs[1]
    from test_graph import check_dot
    graph = check_dot(outputs[0])
    # softmax.jac: a, b, c, max, 3 subtractions, 3 exps, 2 additions, 3 divisions
    assert len(graph["nodes"]) == 3 + 1 + 3 + 3 + 2 + 3
    if shutil.which("dot"):
        done = subprocess.run(["dot", "-Tcanon"], input=outputs[0], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr


def test_graph_mermaid():
    out = ok("graph", "-f", str(SAMPLES / "polar.jac"), "--format", "mermaid")
    lines = out.splitlines()
    assert lines[0].startswith("flowchart")
    # r = sqrt(x^2 + y^2): two pows (sharing the constant 2), an add, a sqrt; atan2(y, x)
    edges = [line for line in lines if "-->" in line]
    assert len(edges) == 2 + 2 + 2 + 1 + 2
    for name in ("x", "y", "r", "theta", "sqrt", "atan2"):
        assert name in out
    dot = ok("graph", "-f", str(SAMPLES / "polar.jac"), "--format", "dot")
    assert len(edges) == dot.count("->")


def test_graph_at_adds_values():
    plain = ok("graph", "x*y + sin(x)")
    valued = ok("graph", "x*y + sin(x)", "--at", "x=1,y=2")
    assert "= " not in plain
    for value in (1.0, 2.0, 2.0, math.sin(1.0), 2.0 + math.sin(1.0)):   # x, y, x*y, sin, sum
        assert f"= {value:.6g}" in valued, value
    mermaid = ok("graph", "x*y + sin(x)", "--at", "x=1,y=2", "--format", "mermaid")
    assert f"= {2.0 + math.sin(1.0):.6g}" in mermaid


# --- tape --explain -----------------------------------------------------------------------------

def _is_scalar_sample(path: Path) -> bool:
    """A sample of scalars only: no array operation in it, no array in its header's --at.
    (The samples of arrays have their own --explain test below: their adjoints are
    arrays.)"""
    from jacli.points import parse_at

    if jacli.compile(path.read_text()).uses_arrays:
        return False
    return all(np.ndim(value) == 0
               for args in (p.values[0] for p in HEADER_COMMANDS if p.values[0][2] == str(path))
               for value in parse_at([a for k, a in enumerate(args)
                                      if k and args[k - 1] == "--at"]).values())


SCALAR_SAMPLES = sorted(p for p in SAMPLES.glob("*.jac") if _is_scalar_sample(p))


def _explain_commands(scalar: bool):
    """One point per sample (of scalars, or of arrays): its first header command with
    --at and no --points."""
    chosen, seen = [], set()
    for param in HEADER_COMMANDS:
        args = param.values[0]
        sample = Path(args[2])
        if "--points" in args or "--at" not in args or sample in seen \
                or (sample in SCALAR_SAMPLES) != scalar:
            continue
        seen.add(sample)
        chosen.append(pytest.param(_without_format(args[1:]), id=sample.stem))
    return chosen


EXPLAIN_COMMANDS = _explain_commands(scalar=True)
ARRAY_EXPLAIN_COMMANDS = _explain_commands(scalar=False)


def test_every_sample_has_an_explain_point():
    assert len(EXPLAIN_COMMANDS) == len(SCALAR_SAMPLES) >= 6
    samples = set(SAMPLES.glob("*.jac"))
    assert len(ARRAY_EXPLAIN_COMMANDS) == len(samples) - len(SCALAR_SAMPLES) >= 8


@pytest.mark.parametrize("args", ARRAY_EXPLAIN_COMMANDS)
def test_explain_of_an_array_sample_ends_with_the_rows_of_its_jacobian(args):
    steps = records(ok("tape", *args, "--explain", "--format", "json"))
    reference = json.loads(ok("jac", *args, "--format", "json"))
    finals = [s for s in steps if "gradient" in s]
    # one backward sweep per output component, each ending with that row of the Jacobian
    assert len(finals) == len(reference["outputs"])
    for final, row in zip(finals, reference["jacobian"]):
        assert list(final["gradient"]) == reference["inputs"]
        assert np.allclose(list(final["gradient"].values()), row, rtol=1e-13, atol=1e-15)


def _option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


@pytest.mark.parametrize("args", EXPLAIN_COMMANDS)
def test_explain_contributions_add_up(args):
    steps = records(ok("tape", *args, "--explain", "--format", "json"))
    rows = records(ok("tape", *args, "--format", "json"))
    entry_of_input = {row["text"]: row["entry"] for row in rows if row["op"] == "input"}
    program = jacli.compile(Path(_option(args, "-f")).read_text())
    at = {k: float(v) for k, v in (p.split("=") for p in _option(args, "--at").split(","))}
    wrt = _option(args, "--wrt")
    inputs = wrt.split(",") if wrt else program.variables
    outputs = [s["output"] for s in steps if "gradient" in s]
    assert outputs == program.outputs

    for output in outputs:
        mine = [s for s in steps if s["output"] == output and "step" in s]
        (final,) = [s for s in steps if s["output"] == output and "gradient" in s]
        assert [s["step"] for s in mine] == list(range(1, len(mine) + 1))
        root = next(row["entry"] for row in rows if output in row["names"])
        received: dict[str, list[float]] = {}
        for step in mine:
            incoming = received.get(step["entry"], [])
            seed = 1.0 if step["entry"] == root else 0.0
            bound = 1e-12 * max(abs(step["adjoint"]), seed + sum(map(abs, incoming)), 1e-300)
            assert abs(step["adjoint"] - (seed + sum(incoming))) <= bound, step
            for send in step["sends"]:
                assert send["contribution"] == step["adjoint"] * send["partial"], send
                received.setdefault(send["to"], []).append(send["contribution"])
        assert mine[0]["entry"] == root and mine[0]["adjoint"] == 1.0
        # The gradient printed is the sum of what reached each input.
        assert list(final["gradient"]) == inputs
        for name, g in final["gradient"].items():
            parts = received.get(entry_of_input[name], [])
            bound = 1e-12 * max(abs(g), sum(map(abs, parts)), 1e-300)
            assert abs(sum(parts) - g) <= bound, (output, name, parts, g)
        # And it is the derivative: central differences of plain evaluation.
        k = program.outputs.index(output)
        for name, g in final["gradient"].items():
            h = 1e-5 * max(1.0, abs(at[name]))
            plus, minus = dict(at), dict(at)
            plus[name] += h
            minus[name] -= h
            fd = (program.eval(plus).value[k] - program.eval(minus).value[k]) / (2 * h)
            assert abs(g - fd) <= 1e-6 * max(1.0, abs(fd)), (output, name, g, fd)


def test_explain_without_a_point_is_a_usage_error():
    code, out, err = invoke_jacli("tape", HESS_PROGRAM, "--explain")
    assert code == 2
    assert out == ""
    assert "--at" in err and "Traceback" not in err

"""The command line against the contract in shared/spec/cli.md: what is printed where, exit statuses,
formats, points files, output files and error messages.

Expected numbers are derived by hand (math written out below), never taken from
jacli itself. `run_jacli` runs a real subprocess (standard output piped, so not a
terminal); `invoke_jacli` runs the same app in process for speed.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import re

import numpy as np
import pytest

import jacli
from conftest import invoke_jacli, run_jacli

POLAR = "r = sqrt(x^2+y^2); theta = atan2(y, x)"
# At x=3, y=4: r = 5, theta = atan2(4, 3); dr/dx = x/r, dr/dy = y/r,
# dtheta/dx = -y/r^2, dtheta/dy = x/r^2.
POLAR_VALUE = [5.0, math.atan2(4, 3)]
POLAR_JACOBIAN = [[0.6, 0.8], [-0.16, 0.12]]

SCALAR = "x^2*y + sin(z)"
# At x=1, y=2, z=3: value x^2*y + sin z; gradient (2xy, x^2, cos z).
SCALAR_VALUE = 2 + math.sin(3)
SCALAR_GRADIENT = [4.0, 1.0, math.cos(3)]

FUNCTIONS = ("sin cos tan asin acos atan sinh cosh tanh asinh acosh atanh exp expm1 log "
             "log1p log2 log10 sqrt cbrt abs sign sigmoid softplus relu atan2 hypot pow "
             "min max").split()


def numbers(line: str) -> list[float]:
    return [float(token) for token in line.split()]


def close(got, want, tol=1e-15) -> bool:
    got, want = np.asarray(got, float), np.asarray(want, float)
    return got.shape == want.shape and bool(np.all(np.abs(got - want) <= tol))


def strict_json(line: str):
    """Parse one line as strict JSON (NaN/Infinity literals are not JSON)."""
    def reject(name):
        raise ValueError(f"non-JSON constant {name}")
    return json.loads(line, parse_constant=reject)


def json_lines(text: str) -> list:
    lines = text.splitlines()
    assert lines, "no output"
    return [strict_json(line) for line in lines]


def assert_clean_failure(code: int, out: str, err: str, status: int = 2) -> None:
    assert code == status, f"exit {code}, expected {status}; stderr:\n{err}"
    assert out == "", f"stdout should be empty, got {out!r}"
    assert err.strip(), "no message on stderr"
    assert "Traceback" not in err and "Traceback" not in out


# --- the acceptance one-liners -----------------------------------------------------------

def test_grad_one_liner_prints_the_gradient_exactly():
    code, out, err = run_jacli("grad", SCALAR, "--at", "x=1,y=2,z=3")
    assert code == 0, err
    assert out == "4.0 1.0 -0.9899924966004454\n"
    assert err == ""


def test_jac_one_liner_prints_the_jacobian_row_major():
    code, out, err = run_jacli("jac", POLAR, "--at", "x=3,y=4")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 1, out
    # dr/dx is the chain rule as written: (0.5/r) * (2x) = 0.1 * 6 in doubles, which is
    # 0.6000000000000001 (as JAX and PyTorch print it); the other entries are exact.
    assert lines[0] == "0.6000000000000001 0.8 -0.16 0.12"
    assert err == ""


def test_plain_is_the_default_when_piped_and_can_be_asked_for():
    code, out, _ = invoke_jacli("grad", SCALAR, "--at", "x=1,y=2,z=3", "--format", "plain")
    assert code == 0
    assert out == "4.0 1.0 -0.9899924966004454\n"


def test_plain_output_reads_into_shell_variables():
    # `read gx gy <<< "$(jacli grad 'x*y' --at x=2,y=3)"`: d/dx = y = 3, d/dy = x = 2
    code, out, _ = invoke_jacli("grad", "x*y", "--at", "x=2,y=3")
    assert code == 0
    assert out == "3.0 2.0\n"


# --- JSON --------------------------------------------------------------------------------

def test_json_eval_has_exactly_the_contract_keys():
    code, out, err = invoke_jacli("eval", POLAR, "--at", "x=3,y=4", "--format", "json")
    assert code == 0, err
    [record] = json_lines(out)
    assert set(record) == {"inputs", "outputs", "at", "value"}
    assert record["inputs"] == ["x", "y"]
    assert record["outputs"] == ["r", "theta"]
    assert record["at"] == {"x": 3.0, "y": 4.0}
    assert close(record["value"], POLAR_VALUE)


def test_json_grad_has_exactly_the_contract_keys_and_a_number_value():
    code, out, err = invoke_jacli("grad", SCALAR, "--at", "x=1,y=2,z=3", "--format", "json")
    assert code == 0, err
    [record] = json_lines(out)
    assert set(record) == {"inputs", "outputs", "at", "value", "gradient"}
    assert record["inputs"] == ["x", "y", "z"]
    assert record["outputs"] == ["f1"]          # unnamed outputs are f1, f2, ...
    assert record["at"] == {"x": 1.0, "y": 2.0, "z": 3.0}
    value = record["value"]
    assert isinstance(value, float) and not isinstance(value, bool), value
    assert close(value, SCALAR_VALUE)
    assert close(record["gradient"], SCALAR_GRADIENT)


def test_json_jac_has_exactly_the_contract_keys():
    code, out, err = invoke_jacli("jac", POLAR, "--at", "x=3,y=4", "--format", "json")
    assert code == 0, err
    [record] = json_lines(out)
    assert set(record) == {"inputs", "outputs", "at", "value", "jacobian"}
    assert record["inputs"] == ["x", "y"]
    assert record["outputs"] == ["r", "theta"]
    assert record["at"] == {"x": 3.0, "y": 4.0}
    assert close(record["value"], POLAR_VALUE)
    assert close(record["jacobian"], POLAR_JACOBIAN)


def test_json_writes_non_finite_numbers_as_strings():
    code, out, err = invoke_jacli("eval", "a = 2*x; b = -x; c = x - x", "--at", "x=inf",
                                  "--format", "json")
    assert code == 0, err
    [record] = json_lines(out)
    assert record["value"] == ["inf", "-inf", "nan"]
    assert record["at"] == {"x": "inf"}


# --- table -------------------------------------------------------------------------------

def test_table_grad_when_piped():
    code, out, err = run_jacli("grad", SCALAR, "--at", "x=1,y=2,z=3", "--format", "table")
    assert code == 0, err
    assert "∂" in out
    assert "-0.98999" in out
    assert "\x1b[" not in out, "no colour codes when standard output is not a terminal"


@pytest.mark.parametrize("command", ["jac", "eval", "tape"])
def test_table_other_commands(command):
    code, out, err = invoke_jacli(command, POLAR, "--at", "x=3,y=4", "--format", "table")
    assert code == 0, err
    assert "theta" in out
    if command == "jac":
        assert "∂" in out
        for text in ("0.6", "0.8", "-0.16", "0.12"):
            assert text in out
    if command == "eval":
        assert "0.9272952" in out      # atan2(4, 3)


# --- errors ------------------------------------------------------------------------------

def _caret(err: str, program: str) -> int | None:
    """The 1-based program column the caret line points at, or None if no caret line."""
    lines = err.splitlines()
    carets = [i for i, line in enumerate(lines) if re.fullmatch(r"\s*\^+\s*", line)]
    if not carets:
        return None
    assert len(carets) == 1, f"more than one caret line:\n{err}"
    i = carets[0]
    assert i > 0 and program in lines[i - 1], f"no program line above the caret:\n{err}"
    return lines[i].index("^") - lines[i - 1].index(program) + 1


def _message(err: str) -> str:
    """stderr without the echoed program line and the caret line."""
    lines = err.splitlines()
    drop = set()
    for i, line in enumerate(lines):
        if re.fullmatch(r"\s*\^+\s*", line):
            drop |= {i, i - 1}
    return "\n".join(line for i, line in enumerate(lines) if i not in drop)


ERRORS = [
    # (extra args, program, offending 1-based column, caret required, must mention)
    pytest.param([], "x^", 3, True, [r"\bend\b"], id="unexpected-end"),
    pytest.param([], "foo(x)", 1, True, [r"\bfoo\b"], id="unknown-function"),
    pytest.param([], "2x", 2, True, [r"2\s*\*\s*x"], id="implicit-multiplication"),
    pytest.param(["--at", "x=1"], "x*y", 3, False, [r"(?<![\w-])y\b"], id="missing-value"),
    pytest.param([], "atan2(x)", 1, True, [r"\batan2\b"], id="wrong-arity"),
]


@pytest.mark.parametrize("extra, program, column, caret_required, mentions", ERRORS)
def test_errors_exit_2_with_one_message_and_a_caret(extra, program, column, caret_required,
                                                    mentions):
    code, out, err = run_jacli("grad", program, *extra)
    assert_clean_failure(code, out, err)
    error_lines = [line for line in err.splitlines() if re.search(r"\berror\b", line, re.I)]
    assert len(error_lines) == 1, f"expected exactly one error message:\n{err}"
    got = _caret(err, program)
    if caret_required:
        assert got is not None, f"no caret line:\n{err}"
    if got is not None:
        assert got == column, (f"caret under column {got} ({program[got - 1:got]!r}), "
                               f"expected {column} ({program[column - 1:column]!r}):\n{err}")
    message = _message(err)
    for pattern in mentions:
        assert re.search(pattern, message), f"message does not match {pattern!r}:\n{err}"


def test_unknown_function_suggests_known_names():
    code, out, err = run_jacli("grad", "foo(x)")
    assert_clean_failure(code, out, err)
    message = _message(err)
    suggested = [name for name in FUNCTIONS if re.search(rf"\b{name}\b", message)]
    assert suggested, f"no known function suggested:\n{err}"


def test_unused_at_variable_is_an_error_unless_allowed():
    code, out, err = invoke_jacli("grad", "x^2", "--at", "x=1,zed=2")
    assert_clean_failure(code, out, err)
    assert re.search(r"\bzed\b", err), err
    code, out, err = invoke_jacli("grad", "x^2", "--at", "x=1,zed=2", "--allow-unused")
    assert code == 0, err
    assert out == "2.0\n"


def test_grad_of_two_outputs_needs_out():
    code, out, err = invoke_jacli("grad", POLAR, "--at", "x=3,y=4")
    assert_clean_failure(code, out, err)


def test_unknown_out_name_is_an_error_naming_it():
    code, out, err = invoke_jacli("jac", POLAR, "--at", "x=3,y=4", "--out", "rho")
    assert_clean_failure(code, out, err)
    assert "rho" in err


def test_missing_points_column_is_an_error_naming_it(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("x\n1\n2\n")
    code, out, err = invoke_jacli("grad", "x*yy", "--points", path)
    assert_clean_failure(code, out, err)
    assert re.search(r"\byy\b", err), err


# --- --at --------------------------------------------------------------------------------

@pytest.mark.parametrize("at", [["--at", "x=1", "--at", "y=2"], ["--at", "x=1,y=2"]],
                         ids=["repeated", "comma"])
def test_at_repeated_or_comma_separated(at):
    # d(x^2*y)/dx = 2xy = 4, d/dy = x^2 = 1
    code, out, err = invoke_jacli("grad", "x^2*y", *at)
    assert code == 0, err
    assert out == "4.0 1.0\n"


@pytest.mark.parametrize("text, expected", [("inf", "inf"), ("nan", "nan"), ("-2", "-4.0"),
                                            ("1e-3", "0.002"), ("-inf", "-inf")])
def test_at_accepts_float_forms(text, expected):
    code, out, err = invoke_jacli("eval", "2*x", "--at", f"x={text}")
    assert code == 0, err
    assert out == expected + "\n"


def test_at_negative_value_for_grad():
    # d(x^3)/dx = 3x^2 = 12 at x = -2
    code, out, err = invoke_jacli("grad", "x^3", "--at", "x=-2")
    assert code == 0, err
    assert close(numbers(out), [12.0], 1e-14)


# --- where the program comes from ----------------------------------------------------------

PROGRAM_FILE = ("# polar coordinates; a comment with a ; in it\n"
                "let rr = x^2 + y^2\n"
                "\n"
                "r = sqrt(rr)\n"
                "   theta = atan2(y, x)   # the angle")    # no final newline


def test_program_from_file(tmp_path):
    path = tmp_path / "polar.jac"
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(PROGRAM_FILE)
    code, out, err = invoke_jacli("jac", "-f", path, "--at", "x=3,y=4", "--format", "json")
    assert code == 0, err
    [record] = json_lines(out)
    assert record["outputs"] == ["r", "theta"]
    assert close(record["jacobian"], POLAR_JACOBIAN)


def test_program_from_stdin():
    code, out, err = run_jacli("jac", "-f", "-", "--at", "x=3,y=4", input=PROGRAM_FILE)
    assert code == 0, err
    assert close(numbers(out), [0.6, 0.8, -0.16, 0.12])


# --- where the points come from ------------------------------------------------------------

def _xy_gradients(out: str) -> list[list[float]]:
    return [numbers(line) for line in out.splitlines()]


def test_points_csv_with_header_and_an_extra_id_column(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("id,x,y\n7,1,2\n8,3,4\n9,-1,0.5\n")
    code, out, err = invoke_jacli("grad", "x*y", "--points", path)
    assert code == 0, err
    assert _xy_gradients(out) == [[2.0, 1.0], [4.0, 3.0], [0.5, -1.0]]   # (y, x)
    code, out, err = invoke_jacli("grad", "x*y", "--points", path, "--format", "json")
    assert code == 0, err
    records = json_lines(out)
    assert [r["at"] for r in records] == [{"x": 1.0, "y": 2.0}, {"x": 3.0, "y": 4.0},
                                         {"x": -1.0, "y": 0.5}]
    assert [r["value"] for r in records] == [2.0, 12.0, -0.5]


def test_points_csv_text_id_column_is_ignored(tmp_path):
    # cli.md: "Columns of --points that the program does not use are ignored (an id
    # column is common)" -- ids are often not numbers.
    path = tmp_path / "p.csv"
    path.write_text("id,x,y\nsample-a,1,2\nsample-b,3,4\n")
    code, out, err = invoke_jacli("grad", "x*y", "--points", path)
    assert code == 0, err
    assert _xy_gradients(out) == [[2.0, 1.0], [4.0, 3.0]]
    assert err == ""


def test_points_json_lines(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"x": 1, "y": 2}\n{"y": 4, "x": 3, "id": 17}\n')
    code, out, err = invoke_jacli("grad", "x*y", "--points", path)
    assert code == 0, err
    assert _xy_gradients(out) == [[2.0, 1.0], [4.0, 3.0]]


def test_points_json_lines_text_id_is_ignored(tmp_path):
    # Unused columns are ignored, whatever they hold.
    path = tmp_path / "p.jsonl"
    path.write_text('{"x": 1, "y": 2, "id": "a"}\n{"y": 4, "x": 3, "id": "b"}\n')
    code, out, err = invoke_jacli("grad", "x*y", "--points", path)
    assert code == 0, err
    assert _xy_gradients(out) == [[2.0, 1.0], [4.0, 3.0]]
    assert err == ""


def test_points_npy_columns_in_wrt_order(tmp_path):
    path = tmp_path / "p.npy"
    np.save(path, np.array([[10.0, 1.0], [2.0, 5.0]]))      # columns (y, x)
    code, out, err = invoke_jacli("grad", "x - 2*y", "--wrt", "y,x", "--points", path,
                                  "--format", "json")
    assert code == 0, err
    records = json_lines(out)
    assert [r["inputs"] for r in records] == [["y", "x"]] * 2
    assert [r["value"] for r in records] == [1.0 - 20.0, 5.0 - 4.0]
    assert [r["gradient"] for r in records] == [[-2.0, 1.0]] * 2


def test_points_npy_default_order_is_first_appearance(tmp_path):
    path = tmp_path / "p.npy"
    np.save(path, np.array([[3.0, 1.0], [6.0, 2.0]]))        # columns (b, a)
    code, out, err = invoke_jacli("eval", "b/a", "--points", path)
    assert code == 0, err
    assert out == "3.0\n3.0\n"


def test_points_from_stdin_default_csv():
    code, out, err = run_jacli("grad", "x*y", "--points", "-", input="x,y\n1,2\n3,4\n")
    assert code == 0, err
    assert _xy_gradients(out) == [[2.0, 1.0], [4.0, 3.0]]


@pytest.mark.parametrize("fmt, name, content", [
    ("jsonl", "p.dat", '{"x": 1, "y": 2}\n{"x": 3, "y": 4}\n'),
    ("csv", "p.jsonl", "x,y\n1,2\n3,4\n"),
    ("npy", "p.bin", None),
])
def test_points_format_option(tmp_path, fmt, name, content):
    path = tmp_path / name
    if content is None:
        with open(path, "wb") as f:
            np.save(f, np.array([[1.0, 2.0], [3.0, 4.0]]))
        assert path.exists() and not path.with_suffix(".bin.npy").exists()
    else:
        path.write_text(content)
    code, out, err = invoke_jacli("grad", "x*y", "--points", path, "--points-format", fmt)
    assert code == 0, err
    assert _xy_gradients(out) == [[2.0, 1.0], [4.0, 3.0]]


def test_at_values_are_shared_parameters_with_points(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("x\n1\n2\n")
    # d(a*x^2)/dx = 2*a*x with a = 3
    code, out, err = invoke_jacli("grad", "a*x^2", "--wrt", "x", "--at", "a=3",
                                  "--points", path)
    assert code == 0, err
    assert out == "6.0\n12.0\n"


# --- selecting ---------------------------------------------------------------------------

def test_wrt_subset_and_order():
    code, out, err = invoke_jacli("grad", SCALAR, "--wrt", "z,x", "--at", "x=1,y=2,z=3",
                                  "--format", "json")
    assert code == 0, err
    [record] = json_lines(out)
    assert record["inputs"] == ["z", "x"]
    assert record["at"] == {"x": 1.0, "y": 2.0, "z": 3.0}   # y is a parameter
    assert close(record["gradient"], [math.cos(3), 4.0])


def test_out_selects_and_orders_outputs():
    code, out, err = invoke_jacli("jac", POLAR, "--at", "x=3,y=4", "--out", "theta")
    assert code == 0, err
    assert close(numbers(out), [-0.16, 0.12])
    code, out, err = invoke_jacli("jac", POLAR, "--at", "x=3,y=4", "--out", "theta",
                                  "--out", "r")
    assert code == 0, err
    assert close(numbers(out), [-0.16, 0.12, 0.6, 0.8])
    code, out, err = invoke_jacli("eval", POLAR, "--at", "x=3,y=4", "--out", "theta",
                                  "--out", "r")
    assert code == 0, err
    assert close(numbers(out), [math.atan2(4, 3), 5.0])


def test_grad_with_out_picks_one_output():
    code, out, err = invoke_jacli("grad", POLAR, "--at", "x=3,y=4", "--out", "theta")
    assert code == 0, err
    assert close(numbers(out), [-0.16, 0.12])


# --- csv ---------------------------------------------------------------------------------

def test_csv_jac_header_names_derivatives():
    code, out, err = invoke_jacli("jac", POLAR, "--at", "x=3,y=4", "--format", "csv")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "x,y,r,theta,dr/dx,dr/dy,dtheta/dx,dtheta/dy"
    assert len(lines) == 2
    assert close([float(v) for v in lines[1].split(",")],
                 [3.0, 4.0] + POLAR_VALUE + [0.6, 0.8, -0.16, 0.12])
    assert "\r" not in out


def test_csv_grad_header():
    code, out, err = invoke_jacli("grad", SCALAR, "--at", "x=1,y=2,z=3", "--format", "csv")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "x,y,z,f1,df1/dx,df1/dy,df1/dz"
    assert close([float(v) for v in lines[1].split(",")],
                 [1.0, 2.0, 3.0, SCALAR_VALUE] + SCALAR_GRADIENT)


# --- -o ----------------------------------------------------------------------------------

MULTI = "s = x + y + z; p = x*y*z"      # m = 2 outputs, n = 3 inputs
PRODUCT = "x*y*z"
POINTS = [(1.0, 2.0, 3.0), (2.0, 3.0, 4.0), (-1.0, 0.5, 2.0)]
S_VALUES = [x + y + z for x, y, z in POINTS]
P_VALUES = [x * y * z for x, y, z in POINTS]
P_GRADIENTS = [[y * z, x * z, x * y] for x, y, z in POINTS]
MULTI_JACOBIANS = [[[1.0, 1.0, 1.0], g] for g in P_GRADIENTS]


@pytest.fixture
def xyz_points(tmp_path):
    path = tmp_path / "points.csv"
    path.write_text("x,y,z\n" + "".join(f"{x},{y},{z}\n" for x, y, z in POINTS))
    return path


def _only_file(directory, name):
    """The output file exists and no temporary file was left beside it."""
    names = sorted(p.name for p in directory.iterdir() if p.name != "points.csv")
    assert names == [name], names


def test_output_csv(tmp_path, xyz_points):
    target = tmp_path / "out.csv"
    code, out, err = invoke_jacli("jac", MULTI, "--points", xyz_points, "-o", target)
    assert code == 0, err
    assert out == ""
    _only_file(tmp_path, "out.csv")
    lines = target.read_text().splitlines()
    assert lines[0] == "x,y,z,s,p,ds/dx,ds/dy,ds/dz,dp/dx,dp/dy,dp/dz"
    rows = [[float(v) for v in line.split(",")] for line in lines[1:]]
    assert rows == [list(pt) + [s, p] + [1.0, 1.0, 1.0] + g
                    for pt, s, p, g in zip(POINTS, S_VALUES, P_VALUES, P_GRADIENTS)]


def test_output_jsonl(tmp_path, xyz_points):
    target = tmp_path / "out.jsonl"
    code, out, err = invoke_jacli("grad", PRODUCT, "--points", xyz_points, "-o", target)
    assert code == 0, err
    assert out == ""
    records = json_lines(target.read_text())
    assert [r["value"] for r in records] == P_VALUES
    assert [r["gradient"] for r in records] == P_GRADIENTS


def test_output_txt_is_plain(tmp_path, xyz_points):
    target = tmp_path / "out.txt"
    code, out, err = invoke_jacli("eval", MULTI, "--points", xyz_points, "-o", target)
    assert code == 0, err
    assert out == ""
    assert [numbers(line) for line in target.read_text().splitlines()] == \
        [[s, p] for s, p in zip(S_VALUES, P_VALUES)]


def test_output_format_option_overrides_the_ending(tmp_path, xyz_points):
    target = tmp_path / "out.txt"
    code, out, err = invoke_jacli("grad", PRODUCT, "--points", xyz_points, "-o", target,
                                  "--format", "json")
    assert code == 0, err
    assert [r["gradient"] for r in json_lines(target.read_text())] == P_GRADIENTS


@pytest.mark.parametrize("command, program, shape, expected", [
    ("eval", MULTI, (3, 2), [[s, p] for s, p in zip(S_VALUES, P_VALUES)]),
    ("grad", PRODUCT, (3, 3), P_GRADIENTS),
    ("jac", MULTI, (3, 2, 3), MULTI_JACOBIANS),
])
def test_output_npy_shapes(tmp_path, xyz_points, command, program, shape, expected):
    target = tmp_path / "out.npy"
    code, out, err = invoke_jacli(command, program, "--points", xyz_points, "-o", target)
    assert code == 0, err
    assert out == ""
    _only_file(tmp_path, "out.npy")
    array = np.load(target)
    assert array.shape == shape
    assert array.dtype == np.float64
    assert array.tolist() == expected


@pytest.mark.parametrize("command, program, key, shape, expected", [
    ("eval", MULTI, None, None, None),
    ("grad", PRODUCT, "gradient", (3, 3), P_GRADIENTS),
    ("jac", MULTI, "jacobian", (3, 2, 3), MULTI_JACOBIANS),
])
def test_output_npz_named_arrays(tmp_path, xyz_points, command, program, key, shape, expected):
    target = tmp_path / "out.npz"
    code, out, err = invoke_jacli(command, program, "--points", xyz_points, "-o", target)
    assert code == 0, err
    assert out == ""
    with np.load(target, allow_pickle=False) as data:
        assert {"value", "inputs", "outputs"} <= set(data.files)
        assert data["inputs"].tolist() == ["x", "y", "z"]
        if command == "grad":
            assert data["outputs"].tolist() == ["f1"]
            assert data["value"].reshape(3).tolist() == P_VALUES
        else:
            assert data["outputs"].tolist() == ["s", "p"]
            assert data["value"].tolist() == [[s, p] for s, p in zip(S_VALUES, P_VALUES)]
        if key is not None:
            assert key in data.files
            assert data[key].shape == shape
            assert data[key].tolist() == expected


@pytest.mark.parametrize("name", ["x.csv", "x.npy"])
def test_unwritable_output_is_an_error_naming_it(name):
    target = f"/nonexistent-dir/{name}"
    code, out, err = run_jacli("grad", "x^2", "--at", "x=1", "-o", target)
    assert_clean_failure(code, out, err)
    assert target in err
    assert not os.path.exists(target)


def test_failed_run_leaves_no_output_file(tmp_path):
    target = tmp_path / "out.csv"
    code, out, err = invoke_jacli("eval", "x*y", "--at", "x=1", "-o", target)
    assert_clean_failure(code, out, err)
    assert list(tmp_path.iterdir()) == []


def test_failed_run_keeps_an_existing_output_file(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old results\n")
    code, out, err = invoke_jacli("eval", "x*", "--at", "x=1", "-o", target)
    assert_clean_failure(code, out, err)
    assert target.read_text() == "old results\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


# --- bad rows ----------------------------------------------------------------------------

BAD_CSV = "id,x,y\n1,1,2\n2,a,3\n3,3,4\n4,5\n5,2,2\n"   # row 2 not a number, row 4 short
GOOD = {1: (1.0, 2.0), 3: (3.0, 4.0), 5: (2.0, 2.0)}   # row -> (x, y)


@pytest.fixture
def bad_csv(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(BAD_CSV)
    return path


def _names_bad_rows(err: str, rows) -> None:
    for row in rows:
        assert re.search(rf"\brow {row}\b", err), f"stderr does not name row {row}:\n{err}"


def test_bad_rows_plain(bad_csv):
    code, out, err = run_jacli("grad", "x*y", "--points", bad_csv)
    assert code == 1, err
    lines = out.splitlines()
    assert len(lines) == 5, out
    for k, line in enumerate(lines, start=1):
        if k in GOOD:
            x, y = GOOD[k]
            assert numbers(line) == [y, x], (k, line)
        else:
            assert line.split() == ["nan", "nan"], (k, line)
    _names_bad_rows(err, [2, 4])
    assert "Traceback" not in err


def test_bad_rows_csv(bad_csv):
    code, out, err = invoke_jacli("grad", "x*y", "--points", bad_csv, "--format", "csv")
    assert code == 1, err
    lines = out.splitlines()
    assert lines[0] == "x,y,f1,df1/dx,df1/dy"
    assert len(lines) == 6, out
    for k, line in enumerate(lines[1:], start=1):
        fields = line.split(",")
        assert len(fields) == 5, line
        if k in GOOD:
            x, y = GOOD[k]
            assert [float(v) for v in fields] == [x, y, x * y, y, x]
        else:
            assert fields == ["nan"] * 5, (k, line)
    _names_bad_rows(err, [2, 4])


def test_bad_rows_json(bad_csv):
    code, out, err = invoke_jacli("grad", "x*y", "--points", bad_csv, "--format", "json")
    assert code == 1, err
    records = json_lines(out)
    assert len(records) == 5
    for k, record in enumerate(records, start=1):
        if k in GOOD:
            x, y = GOOD[k]
            assert record["value"] == x * y and record["gradient"] == [y, x]
        else:
            assert set(record) == {"row", "error"}, record
            assert record["row"] == k
            assert isinstance(record["error"], str) and record["error"]
    _names_bad_rows(err, [2, 4])


def test_bad_rows_in_json_lines_points(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"x": 1, "y": 2}\nnot json\n{"x": "abc", "y": 1}\n{"x": 3}\n'
                    '{"x": 2, "y": 2}\n')
    code, out, err = invoke_jacli("grad", "x*y", "--points", path, "--format", "json")
    assert code == 1, err
    records = json_lines(out)
    assert len(records) == 5
    assert records[0]["gradient"] == [2.0, 1.0]
    assert records[4]["gradient"] == [2.0, 2.0]
    assert [records[k - 1].get("row") for k in (2, 3, 4)] == [2, 3, 4]
    _names_bad_rows(err, [2, 3, 4])


# --- warnings ----------------------------------------------------------------------------

def test_domain_warning_goes_to_stderr_and_value_is_nan():
    code, out, err = invoke_jacli("eval", "log(x)", "--at", "x=-1")
    assert code == 0, err
    assert out == "nan\n"
    assert re.search(r"\blog\b", err), err


def test_domain_warning_keeps_json_clean(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("x\n-1\n1\n")
    code, out, err = invoke_jacli("eval", "log(x)", "--points", path, "--format", "json")
    assert code == 0, err
    records = json_lines(out)
    assert [r["value"] for r in records] == [["nan"], [0.0]]
    assert re.search(r"\blog\b", err), err


def test_domain_warning_names_sqrt():
    code, out, err = run_jacli("eval", "sqrt(x)", "--at", "x=-1")
    assert code == 0, err
    assert out == "nan\n"
    assert re.search(r"\bsqrt\b", err), err


# --- version and help --------------------------------------------------------------------

def test_version():
    code, out, err = run_jacli("--version")
    assert code == 0, err
    assert jacli.__version__ in out
    assert importlib.metadata.version("jacli") in out


@pytest.mark.parametrize("command", ["eval", "grad", "jac", "tape"])
def test_help_shows_an_example(command):
    code, out, err = invoke_jacli(command, "--help")
    assert code == 0, err
    assert re.search(r"example", out, re.I), out
    assert re.search(rf"jacli {command} \S", out), out


# --- tape --------------------------------------------------------------------------------

def _entry_for(entries: list[dict], name: str) -> dict:
    found = [e for e in entries
             if e.get("op") in ("input", "var", "variable")
             and (e.get("text") == name or e.get("name") == name or name in e.get("names", []))]
    assert len(found) == 1, f"no single input entry for {name}: {entries}"
    return found[0]


def _adjoints(entry: dict) -> list:
    if "adjoints" in entry:
        return entry["adjoints"]
    return [entry["adjoint"]]


def test_tape_json_input_adjoints_are_the_gradient():
    code, out, err = invoke_jacli("tape", SCALAR, "--at", "x=1,y=2,z=3", "--format", "json")
    assert code == 0, err
    entries = json_lines(out)
    assert all(isinstance(e, dict) for e in entries)
    assert len(entries) >= 6          # at least x, y, z, a product, sin, the sum
    for name, want in zip("xyz", SCALAR_GRADIENT):
        assert close(_adjoints(_entry_for(entries, name)), [want]), name
    for name, value in zip("xyz", (1.0, 2.0, 3.0)):
        assert _entry_for(entries, name)["value"] == value
    assert close(entries[-1]["value"], SCALAR_VALUE)


def test_tape_json_two_outputs_one_adjoint_per_output():
    code, out, err = invoke_jacli("tape", POLAR, "--at", "x=3,y=4", "--format", "json")
    assert code == 0, err
    entries = json_lines(out)
    assert close(_adjoints(_entry_for(entries, "x")), [0.6, -0.16])
    assert close(_adjoints(_entry_for(entries, "y")), [0.8, 0.12])


def test_tape_plain_with_a_point():
    code, out, err = invoke_jacli("tape", SCALAR, "--at", "x=1,y=2,z=3")
    assert code == 0, err
    assert err == ""
    lines = out.splitlines()
    assert len(lines) >= 6, out
    assert "sin" in out
    assert repr(math.cos(3)) in out          # the adjoint of z and sin's local derivative
    assert repr(SCALAR_VALUE) in out         # the output's value


def test_tape_without_a_point_lists_the_entries():
    code, out, err = invoke_jacli("tape", SCALAR, "--format", "json")
    assert code == 0, err
    entries = json_lines(out)
    assert len(entries) >= 6
    assert all(isinstance(e, dict) and e.get("value") is None for e in entries)  # no point
    for name in "xyz":
        assert any(name in json.dumps(e) for e in entries), name


# --- more edge cases of the contract -------------------------------------------------------

@pytest.mark.parametrize("fmt, expected", [("plain", ""), ("json", ""),
                                           ("csv", "x,y,f1,df1/dx,df1/dy\n")])
def test_points_file_with_no_rows_gives_no_results(tmp_path, fmt, expected):
    # One result per point: a header-only file has zero points, which is not an error.
    path = tmp_path / "empty.csv"
    path.write_text("x,y\n")
    code, out, err = run_jacli("grad", "x*y", "--points", path, "--format", fmt)
    assert code == 0, err
    assert out == expected
    assert err == ""


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("indent", ["", "\t", "    "], ids=["flush", "tab", "spaces"])
def test_caret_in_a_later_line_of_a_program_file(tmp_path, newline, indent):
    path = tmp_path / "bad.jac"
    line = f"{indent}theta = 2y"
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(f"r = x^2{newline}{line}{newline}")
    code, out, err = invoke_jacli("eval", "-f", path, "--at", "x=1,y=2")
    assert_clean_failure(code, out, err)
    assert "\r" not in err
    lines = err.splitlines()
    carets = [i for i, text in enumerate(lines) if re.fullmatch(r"\s*\^+\s*", text)]
    assert len(carets) == 1, err
    echoed, caret = lines[carets[0] - 1], lines[carets[0]]
    assert "theta = 2y" in echoed, err
    # Where a terminal shows it (tabs to multiples of 8): the caret is under the 'y'.
    column = caret.expandtabs(8).index("^")
    assert echoed.expandtabs(8)[column:column + 1] == "y", err
    assert re.search(r"2\s*\*\s*y", _message(err)), err
    assert re.search(r"\b2\b", "".join(lines[:carets[0] - 1])), "no line number 2 in message"


def _sgr_colour_codes(text: str) -> list[str]:
    """Colour parameters (30-49, 90-107) of the SGR escape sequences in text."""
    found = []
    for params in re.findall(r"\x1b\[([0-9;]*)m", text):
        codes = [int(p) for p in params.split(";") if p]
        found += [str(c) for c in codes if 30 <= c <= 49 or 90 <= c <= 107]
    return found


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_auto_format_on_a_terminal_is_a_table_and_no_color_is_honoured():
    import pty
    import subprocess
    import sys

    from conftest import REPO, _env

    def run_on_tty(env_extra):
        master, slave = pty.openpty()
        env = _env()
        env.pop("NO_COLOR", None)
        env.update(env_extra, TERM="xterm-256color")
        process = subprocess.Popen([sys.executable, "-m", "jacli", "grad", SCALAR,
                                    "--at", "x=1,y=2,z=3"], stdout=slave,
                                   stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                   env=env, cwd=REPO)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:        # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        process.wait(timeout=60)
        os.close(master)
        return process.returncode, b"".join(chunks).decode("utf-8"), process.stderr.read()

    code, out, err = run_on_tty({})
    assert code == 0, err
    assert "∂" in out and "-0.98999" in out          # the table, not plain numbers
    code, out, err = run_on_tty({"NO_COLOR": "1"})
    assert code == 0, err
    assert "∂" in out
    assert _sgr_colour_codes(out) == [], "NO_COLOR is set but colours were written"


@pytest.mark.parametrize("program, expected", [("pi", repr(math.pi)), ("2^3^2", "512.0"),
                                               ("1 + 1; e", "2.0 " + repr(math.e))])
def test_eval_of_a_program_without_variables(program, expected):
    code, out, err = invoke_jacli("eval", program)
    assert code == 0, err
    assert out == expected + "\n"


@pytest.mark.parametrize("args, named", [
    (["grad", "x*y", "--wrt", "q", "--at", "x=1,y=2"], "q"),
    (["grad", "-f", "/nonexistent-dir/prog.jac", "--at", "x=1"], "/nonexistent-dir/prog.jac"),
    (["grad", "x", "--points", "/nonexistent-dir/p.csv"], "/nonexistent-dir/p.csv"),
    (["grad", "x", "--at", "x=abc"], "abc"),
    (["grad", "x", "--at", "x=1", "--format", "yaml"], "yaml"),
    (["grad", "x", "--at", "x=1", "--points-format", "xml", "--points", "-"], "xml"),
], ids=["wrt-unknown", "no-program-file", "no-points-file", "at-not-a-number",
        "bad-format", "bad-points-format"])
def test_command_line_errors_exit_2_naming_the_problem(args, named):
    code, out, err = invoke_jacli(*args, input="")
    assert_clean_failure(code, out, err)
    assert named in err, err


@pytest.mark.parametrize("args", [("grad", "--help"), ("jac", "--bogus"), ("hess",),
                                  ("check", "x", "--at"), ("eval", "x", "--at", "x=2")])
def test_a_run_of_one_command_reads_as_the_whole_app(args):
    """`jacli COMMAND ...` builds only that command (start-up time): its help, usage
    errors, output and exit status are those of the app with every command."""
    from typer.testing import CliRunner

    from jacli import cli

    def run(app):
        result = CliRunner().invoke(app, list(args), prog_name="jacli")
        return result.exit_code, result.stdout, result.stderr

    one = cli._app_for(["jacli", *args])
    assert one is not cli.app and len(one.registered_commands) == 1
    assert run(one) == run(cli.app)

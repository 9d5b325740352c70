"""The Rich tables at every terminal width: a number or a header is never split.

Each view is rendered in process into a `Console(width=W, color_system=None)` at
W = 40, 60, 80 and 120; then every number printed must read back as one of the values
shown, rounded to the digits it shows, and every value must be printed once per cell
(a number split over two lines gives two wrong tokens, or a token too many).
"""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pytest
from rich.console import Console

import jacli
from jacli.check import check_jacobian
from jacli.check_view import check_renderable
from jacli.formats import Report
from jacli.render import explain_renderable, report_renderable, tape_renderable
from jacli.tape_view import explain_steps, tape_rows

WIDTHS = (40, 60, 80, 120)

# A number standing alone: not the digits of a name (x12, ∂/∂x3, v10) or of a longer token.
NUMBER = re.compile(r"(?<![\w.∂²])[-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?|inf|nan)(?![\w.])")
# What is not data: block labels ("columns 1–4 of 11: ...") and the rounding note.
NOT_DATA = re.compile(r"\bcolumns? \d+(–\d+)? of \d+:|\(numbers rounded to \d+ significant "
                      r"digits to fit \d+ columns;", re.M)


def render(renderable, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, highlight=False)
    console.print(renderable)
    return console.file.getvalue()


def numbers(text: str) -> list[str]:
    text = NOT_DATA.sub("", re.sub(r"(?<=\S)\n(?=\S)", " ", text))  # notes may wrap
    return [token for line in text.splitlines() for token in NUMBER.findall(line)]


def significant(token: str) -> int:
    mantissa = token.lstrip("+-").split("e")[0].replace(".", "").lstrip("0")
    return max(1, len(mantissa))


def shown_as(value: float) -> set:
    """The tokens (digits, number) that show `value` rounded to 1 to 17 significant digits."""
    if math.isnan(value) or math.isinf(value):
        return {repr(value)}
    return {(d, float(format(value, f".{d}g"))) for d in range(1, 18)}


def key(token: str):
    return token if token in ("nan", "inf", "-inf") else (significant(token), float(token))


def assert_every_number_intact(text: str, values, width: int, complete: bool = True):
    """No line is wider than `width`; every number token in `text` shows one of `values`
    to its digits; with `complete`, every value is shown by some token."""
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines), f"a line wider than {width}:\n{text}"
    tokens = {key(token): token for token in numbers(text)}
    forms = [shown_as(float(v)) for v in values]
    known = set().union(*forms)
    for form, token in tokens.items():
        assert form in known, f"{token!r} shows none of the values at width {width}:\n{text}"
    if complete:
        missing = [v for v, form in zip(values, forms) if not form & tokens.keys()]
        assert not missing, f"values not printed at width {width}: {missing[:5]}\n{text}"


def assert_headers_whole(text: str, headers):
    for header in headers:
        assert any(header in line for line in text.splitlines()), \
            f"header {header!r} is not on one line:\n{text}"


def awkward_values(rng, shape) -> np.ndarray:
    """Numbers of every width: 10 significant digits, tiny and huge exponents, integers,
    zeros and the non-finite."""
    values = rng.standard_normal(shape) * 10.0 ** rng.integers(-12, 13, shape)
    flat = values.reshape(-1)
    specials = [0.0, 3.0, -1.234567891e-100, 2.4424906541753444e-11, np.nan, -np.inf]
    flat[:len(specials)] = specials[:flat.size]
    return values


def jac_report(m: int, n: int, seed: int = 0) -> Report:
    rng = np.random.default_rng(seed + 100 * m + n)
    inputs = [f"x{j + 1}" for j in range(n)]
    at = np.round(rng.standard_normal((1, n)), 3)
    return Report("jac", inputs, [f"y{i + 1}" for i in range(m)], inputs, at,
                  awkward_values(rng, (1, m)), awkward_values(rng, (1, m, n)), {}, None,
                  None, None, 0)


SIZES = [(k, k) for k in range(1, 13)] + [(1, 12), (12, 1), (3, 7)]


@pytest.mark.parametrize("m, n", SIZES, ids=[f"{m}x{n}" for m, n in SIZES])
def test_jacobian_table_never_splits_a_number_or_header(m, n):
    report = jac_report(m, n)
    values = list(report.at[0]) + list(report.value[0]) + list(report.jacobian[0].ravel())
    for width in WIDTHS:
        text = render(report_renderable(report), width)
        assert_every_number_intact(text, values, width)
        assert_headers_whole(text, [f"∂/∂x{j + 1}" for j in range(n)] + ["output", "value"])


def test_ten_input_gradient_at_one_point_and_many():
    rng = np.random.default_rng(7)
    inputs = [f"w{j + 1}" for j in range(10)]
    for count in (1, 6):
        at = awkward_values(rng, (count, 10))
        report = Report("grad", inputs, ["loss"], inputs, at, awkward_values(rng, (count, 1)),
                        awkward_values(rng, (count, 1, 10)), {}, None, None, None, 0)
        values = list(at.ravel()) + list(report.value.ravel()) + list(report.jacobian.ravel())
        if count > 1:        # the row numbers
            values += range(1, count + 1)
        for width in WIDTHS:
            text = render(report_renderable(report), width)
            assert_every_number_intact(text, values, width)
            headers = (["input", "∂loss/∂input"] if count == 1 else
                       [f"∂loss/∂w{j + 1}" for j in range(10)])
            assert_headers_whole(text, headers)


def test_hessian_of_twelve_inputs_never_splits_a_number():
    rng = np.random.default_rng(3)
    inputs = [f"x{j + 1}" for j in range(12)]
    at = awkward_values(rng, (1, 12))
    report = Report("hess", inputs, ["f"], inputs, at, awkward_values(rng, (1, 1)),
                    awkward_values(rng, (1, 1, 12)), {}, awkward_values(rng, (1, 12, 12)),
                    None, None, 0)
    values = (list(at[0]) * 1 + [report.value[0, 0]] * 1 + list(report.jacobian[0, 0])
              + list(report.hessian[0].ravel()))
    for width in WIDTHS:
        text = render(report_renderable(report), width)
        # the title `f = value` and the gradient table's `value` column (the point) both show
        assert_every_number_intact(text, values, width, complete=False)
        assert_headers_whole(text, [f"∂f/∂x{j + 1}" for j in range(12)])


def test_batch_table_of_many_columns_and_a_bad_row():
    rng = np.random.default_rng(11)
    names = ["a", "b", "c", "d", "e"]
    at = awkward_values(rng, (4, 5))
    value = awkward_values(rng, (4, 3))
    at[2], value[2] = np.nan, np.nan
    report = Report("eval", [], ["out_one", "out_two", "out_three"], names, at, value, None,
                    {2: "the value of 'a' is not a number: 'abc'"}, None, None, None, 0)
    good = [0, 1, 3]
    values = list(at[good].ravel()) + list(value[good].ravel()) + [1, 2, 4, 3]  # row numbers
    for width in WIDTHS:
        text = render(report_renderable(report), width)
        assert_every_number_intact(text, values, width)
        assert_headers_whole(text, ["out_one", "out_two", "out_three", "error (below)"])


CHECK_PROGRAM = "x^2*y + sin(z); g = exp(x*z)/y; h = atan2(y, z)"


def test_check_table_never_splits_a_number():
    """The issue's case: at 60 columns 2.44e-11 was printed as `2.44e-1` and `1`."""
    program = jacli.compile(CHECK_PROGRAM)
    point = {"x": np.array([1.0]), "y": np.array([2.0]), "z": np.array([3.0])}
    result = check_jacobian(program, point)
    values = ([1, 2, 3, result.rtol, result.atol] + list(result.ad.ravel())
              + list(result.fd.ravel()) + list(result.abs_error.ravel())
              + list(result.rel_error.ravel()))
    for width in WIDTHS:
        text = render(check_renderable(result), width)
        assert_every_number_intact(text, values, width, complete=False)
        assert_headers_whole(text, ["finite difference", "abs err", "rel err", "status"])
        assert "2.44e-11" in text
    one = render(check_renderable(check_jacobian(jacli.compile("x^2*y + sin(z)"), point)), 60)
    assert len(re.findall(r"(?<![\w.])2\.44e-11(?![\w.])", one)) == 4, one  # 2 cells, verdict


def tape_view(source: str, point: dict):
    program = jacli.compile(source)
    trace = program.trace(point)
    rows = tape_rows(program, program.outputs, trace)
    values = [v for row in rows for v in [row["value"], *row["partials"], *row["adjoints"]]
              if v is not None]
    return program, trace, rows, values + list(trace.jacobian.ravel()) + list(point.values())


def test_tape_table_never_splits_a_number_and_shows_ten_digits():
    program, trace, rows, values = tape_view("x^2*y + sin(z)", {"x": 1.0, "y": 2.0, "z": 3.0})
    for width in WIDTHS:
        text = render(tape_renderable(program, program.outputs, trace, rows), width)
        assert_every_number_intact(text, values, width, complete=False)
        assert_headers_whole(text, ["entry", "value", "local partials", "adjoint ∂f1/∂entry"])
    # where it fits, to 10 digits as every other table (it showed 6): sin(3), cos(3)
    assert "0.1411200081" in text and "∂/∂v5=-0.9899924966" in text, text
    steps = explain_steps(rows, program.outputs, trace)
    for width in WIDTHS:
        text = render(explain_renderable(steps), width)
        assert_every_number_intact(text, values, width, complete=False)


def test_a_long_tape_folds_and_keeps_numbers_whole():
    source = "; ".join(f"y{i} = sin(x{i}*x{i % 6 + 1}) + x{(i + 2) % 6 + 1}^2/{i + 1}"
                       for i in range(1, 7))
    point = {f"x{i}": 0.1234567 * i for i in range(1, 7)}
    program, trace, rows, values = tape_view(source, point)
    values += [2.0] + [i + 1.0 for i in range(1, 7)]     # the constants in the source text
    for width in (40, 80):
        text = render(tape_renderable(program, program.outputs, trace, rows), width)
        assert all(len(line) <= width for line in text.splitlines())
        assert_headers_whole(text, [f"adjoint ∂y{i}/∂entry" for i in range(1, 7)])


def test_shortened_numbers_say_so():
    """A gradient at 40 columns: to 6 digits, said under the table; at 120 all 10."""
    report = Report("grad", ["x", "y"], ["f"], ["x", "y"], np.array([[-1.234567891e-10, 2.5]]),
                    np.array([[0.5]]), np.array([[[-0.1234567891, 0.9876543219]]]), {}, None,
                    None, None, 0)
    narrow = render(report_renderable(report), 40)
    assert "-0.123457" in narrow and "0.987654" in narrow
    assert "numbers rounded to 6 significant digits" in " ".join(narrow.split())
    wide = render(report_renderable(report), 120)
    assert "-0.1234567891" in wide and "significant digits" not in wide



def test_too_narrow_for_any_table_lists_the_entries():
    report = jac_report(2, 2)
    text = render(report_renderable(report), 24)
    values = list(report.at[0]) + list(report.value[0]) + list(report.jacobian[0].ravel())
    assert_every_number_intact(text, values, 24)
    assert "y2 ∂/∂x2 = " in " ".join(text.split())

# --- what the commands print (in process) ------------------------------------------------

NOTHING = "nothing to differentiate: the program has no variables"


@pytest.mark.parametrize("args", [
    ["grad", "pi"], ["grad", "pi", "--format", "table"], ["grad", "pi", "--format", "json"],
    ["jac", "1 + 1; e"], ["hess", "2^3"], ["jvp", "pi"], ["vjp", "pi", "--cotangent", "f1=1"],
    ["check", "pi"], ["check", "pi", "--format", "table"], ["diff", "pi"],
    ["diff", "pi", "--order", "2"], ["tape", "pi", "--explain"],
    ["grad", "pi", "--points", "-"]], ids=lambda args: "-".join(args[:1] + args[2:]))
def test_a_program_without_variables_has_nothing_to_differentiate(invoke_jacli, args):
    """`grad pi` printed an empty line and exit 0; `jvp pi` was an internal error."""
    code, out, err = invoke_jacli(*args, input="x\n1\n")
    assert (code, out) == (2, ""), (code, out, err)
    assert err.startswith("jacli: error: " + NOTHING), err
    assert "hint: jacli eval prints its value" in err


def test_the_tape_of_a_program_without_variables_is_still_shown(invoke_jacli):
    code, out, err = invoke_jacli("tape", "pi")
    assert (code, err) == (0, "")
    assert out.startswith("v0 = const  # 3.141592653589793") and "value=3.141592653589793" in out
    code, out, err = invoke_jacli("tape", "pi", "--format", "table")
    assert code == 0 and "3.141592654" in out and "Jacobian" not in out


def test_an_output_that_needs_no_variable_names_the_inputs_to_choose(invoke_jacli):
    code, out, err = invoke_jacli("jac", "u = x^2; v = 3", "--out", "v", "--at", "x=1")
    assert (code, out) == (2, "")
    assert "nothing to differentiate: v depends on no variable" in err
    assert "--wrt (the program's variables: x)" in err
    assert invoke_jacli("jac", "u = x^2; v = 3", "--out", "v", "--at", "x=1",
                        "--wrt", "x")[:2] == (0, "0.0\n")


def test_check_table_says_each_failure_reason_once(invoke_jacli):
    reason = "finite differences see the average of both sides"
    code, out, err = invoke_jacli("check", "relu(x)*y", "--at", "x=0,y=2", "--format", "table")
    assert code == 1
    both = " ".join((out + err).split())
    assert both.count(reason) == 1, (out, err)
    assert "disagree at the point" in both
    code, out, err = invoke_jacli("check", "relu(x)*y", "--at", "x=0,y=2")   # plain: stderr
    assert code == 1 and out == "1.0 1.0 FAIL\n" and err.count(reason) == 1, (out, err)

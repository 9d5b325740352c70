"""Adversarial inputs and Unix manners, one test (or parametrized case) per item.

Each item here has a line in README.md, "Behaviour in the corners" -> "Adversarial
inputs at a glance", saying what jacli does; the tests assert exactly that, through
the command line: the exit status, one message on standard error naming the problem
(with row numbers for bad rows), no Python traceback, and standard output where it
matters. Expected numbers are worked out by hand or by a plain Python loop, never
taken from jacli.

Two runs are heavy and are skipped unless JACLI_SLOW=1: a program of 1,000,000
terms and a 5 MB program of real terms (tens of seconds, close to 1 GB). The default
run checks the same paths with cheaper shapes: a 5 MB program that is mostly a
comment, and a program of 200,000 terms.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from conftest import _env, invoke_jacli, run_jacli


def slow(test):
    """Marked `slow`, and skipped unless JACLI_SLOW=1."""
    skip = pytest.mark.skipif(os.environ.get("JACLI_SLOW") != "1",
                              reason="heavy (tens of seconds, ~1 GB): set JACLI_SLOW=1")
    with warnings.catch_warnings():  # `slow` is not registered in pyproject.toml (yet)
        warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
        return pytest.mark.slow(skip(test))


PYTHON_JACLI = f"{shlex.quote(sys.executable)} -m jacli"


def assert_no_traceback(err: str) -> None:
    assert "Traceback" not in err, err
    assert "internal error" not in err, err
    assert "Exception ignored" not in err, err


def assert_one_error(code: int, out: str, err: str, *words: str, status: int = 2) -> None:
    """Exit `status`, nothing on standard output, one `jacli: error:` message that
    contains every one of `words`."""
    assert code == status, (code, err)
    assert out == "", out
    assert_no_traceback(err)
    assert err.startswith("jacli: error: "), err
    assert err.count("jacli: error") == 1, err
    for word in words:
        assert word in err, (word, err)


def assert_bad_rows(code: int, err: str, rows: dict[int, str], total: int) -> None:
    """Exit 1; a line `jacli: row K: ...` per bad row (with its words) and a summary."""
    assert code == 1, (code, err)
    assert_no_traceback(err)
    lines = err.splitlines()
    row_lines = [line for line in lines if line.startswith("jacli: row ")]
    assert [int(line.split()[2].rstrip(":")) for line in row_lines] == sorted(rows), err
    for line, (row, words) in zip(row_lines, sorted(rows.items())):
        assert words in line, (row, words, line)
    assert lines[-1] == (f"jacli: {len(rows)} of {total} rows failed; "
                         f"{total - len(rows)} evaluated"), err


def write(path, data: str | bytes):
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


# === 1. Programs ===========================================================================

@pytest.mark.parametrize("program", ["", "   ", ";;", "\n\n"], ids=["empty", "spaces", "semicolons",
                                                                    "newlines"])
def test_empty_program_is_an_error(program):
    code, out, err = invoke_jacli("eval", "--", program)
    assert_one_error(code, out, err, "the program has no output")


def test_empty_program_file_is_an_error(tmp_path):
    code, out, err = invoke_jacli("eval", "-f", write(tmp_path / "empty.jac", ""))
    assert_one_error(code, out, err, "the program has no output")


@pytest.mark.parametrize("where", ["argument", "file", "stdin"])
def test_program_of_only_comments_is_an_error(tmp_path, where):
    text = "# polar coordinates\n# (to do)\n\n"
    if where == "argument":
        code, out, err = invoke_jacli("eval", "# nothing yet")
    elif where == "file":
        code, out, err = invoke_jacli("eval", "-f", write(tmp_path / "c.jac", text))
    else:
        code, out, err = invoke_jacli("eval", "-f", "-", input=text)
    assert_one_error(code, out, err, "the program has no output")


FIVE_MB = 5 * 1024 * 1024


@pytest.mark.parametrize("where", ["file", "stdin"])
def test_five_megabyte_program_mostly_comment(tmp_path, where):
    # 5 MB of comment, then x^2: d/dx x^2 at 3 is 6.
    text = "# " + "a" * FIVE_MB + "\ny = x^2\n"
    if where == "file":
        code, out, err = run_jacli("grad", "-f", write(tmp_path / "big.jac", text), "--at", "x=3")
    else:
        code, out, err = run_jacli("grad", "-f", "-", "--at", "x=3", input=text)
    assert (code, out, err) == (0, "6.0\n", "")


def test_two_hundred_thousand_terms(tmp_path):
    # x + x + ... (200,000 terms) at x = 0.5: value 100,000 and derivative 200,000,
    # both exact in double precision. (Too long for a command-line argument: -f.)
    path = write(tmp_path / "terms.jac", "+".join(["x"] * 200_000))
    code, out, err = run_jacli("grad", "-f", path, "--at", "x=0.5", "--format", "json")
    assert code == 0, err
    assert err == ""
    (record,) = json_lines(out)
    assert record["value"] == 100_000.0
    assert record["gradient"] == [200_000.0]


@slow
def test_one_million_terms(tmp_path):
    program = "+".join(["x"] * 1_000_000)
    path = write(tmp_path / "million.jac", program)
    code, out, err = run_jacli("grad", "-f", path, "--at", "x=0.5", "--format", "json")
    assert code == 0, err
    (record,) = json_lines(out)
    assert record["value"] == 500_000.0
    assert record["gradient"] == [1_000_000.0]


@slow
def test_five_megabyte_program_of_terms(tmp_path):
    # k.5*x^2 for k = 1..97 cycling, until the text is 5 MB; at x = 1 the value is the
    # sum of the k.5 and the derivative twice that (all multiples of 0.5: exact).
    terms, size, value = [], 0, 0.0
    while size < FIVE_MB:
        k = len(terms) % 97 + 1
        terms.append(f"{k}.5*x^2")
        size += len(terms[-1]) + 1
        value += k + 0.5
    path = write(tmp_path / "terms.jac", "+".join(terms) + "\n")
    code, out, err = run_jacli("grad", "-f", path, "--at", "x=1", "--format", "json")
    assert code == 0, err
    (record,) = json_lines(out)
    assert record["value"] == value
    assert record["gradient"] == [2 * value]


DEPTH = 100_000


def test_parentheses_nested_100000_deep(tmp_path):
    path = write(tmp_path / "deep.jac", "(" * DEPTH + "x" + ")" * DEPTH)
    code, out, err = run_jacli("grad", "-f", path, "--at", "x=3", "--format", "json")
    assert code == 0, err
    assert err == ""
    (record,) = json_lines(out)
    assert record["value"] == 3.0
    assert record["gradient"] == [1.0]


def test_calls_nested_100000_deep(tmp_path):
    # sin(sin(...sin(x)...)): the value by iterating, the derivative by the chain rule.
    path = write(tmp_path / "deep.jac", "sin(" * DEPTH + "x" + ")" * DEPTH)
    value, derivative = 0.5, 1.0
    for _ in range(DEPTH):
        derivative *= math.cos(value)
        value = math.sin(value)
    code, out, err = run_jacli("grad", "-f", path, "--at", "x=0.5", "--format", "json")
    assert code == 0, err
    assert err == ""
    (record,) = json_lines(out)
    assert record["value"] == pytest.approx(value, rel=1e-9)
    assert record["gradient"] == [pytest.approx(derivative, rel=1e-9)]


def test_unbalanced_nesting_100000_deep_gives_a_short_message(tmp_path):
    # One ')' missing at the end of a 200,001-character line. The message must say what
    # is wrong and where, but not copy the whole line (and 200,000 spaces before the
    # caret) to standard error: a screenful at most.
    path = write(tmp_path / "deep.jac", "(" * DEPTH + "x" + ")" * (DEPTH - 1))
    code, out, err = run_jacli("eval", "-f", path, "--at", "x=1")
    assert code == 2, err
    assert_no_traceback(err)
    assert "program:1:200001: unexpected end of program: expected ')'" in err, err[:300]
    assert len(err) < 2000, f"{len(err):,} characters on standard error"


def test_nul_byte_in_a_program_file(tmp_path):
    code, out, err = invoke_jacli("eval", "-f", write(tmp_path / "nul.jac", "x\0+1\n"),
                                  "--at", "x=1")
    assert_one_error(code, out, err, "program:1:2: unexpected character '\\x00'")
    # The NUL is shown as '?' so the caret stays under it on a terminal.
    assert err.splitlines()[1:] == ["  x?+1", "   ^"]


def test_nul_byte_in_a_program_on_stdin():
    code, out, err = invoke_jacli("eval", "-f", "-", "--at", "x=3", input=b"x^2\0")
    assert_one_error(code, out, err, "program:1:4: unexpected character '\\x00'")


def test_non_utf8_program_file(tmp_path):
    code, out, err = invoke_jacli("eval", "-f", write(tmp_path / "latin1.jac", b"x+\xff1"),
                                  "--at", "x=1")
    assert_one_error(code, out, err, "latin1.jac is not UTF-8 text (byte 2 is 0xff)")


def test_crlf_program_file(tmp_path):
    path = write(tmp_path / "crlf.jac", "# squares\r\ny = x^2\r\nz = x + 1\r\n")
    code, out, err = invoke_jacli("eval", "-f", path, "--at", "x=2")
    assert (code, out, err) == (0, "4.0 3.0\n", "")


def test_crlf_program_file_syntax_error_is_reported_as_with_lf(tmp_path):
    # The same message as for the LF file: column 8 (just after the '+'), not 9 (the
    # '\r' counted as a column), and no '\r' in what is shown.
    path = write(tmp_path / "crlf.jac", "y = x^2\r\nz = x +\r\n")
    code, out, err = invoke_jacli("eval", "-f", path, "--at", "x=2")
    lf = invoke_jacli("eval", "-f", write(tmp_path / "lf.jac", "y = x^2\nz = x +\n"), "--at", "x=2")
    assert lf[2].startswith("jacli: error: program:2:8: unexpected end of statement"), lf
    assert_one_error(code, out, err, "program:2:8: unexpected end of statement")
    assert "\r" not in err
    assert err.splitlines()[1:] == ["  z = x +", "         ^"]


def test_utf8_bom_in_a_program_file(tmp_path):
    code, out, err = invoke_jacli("eval", "-f", write(tmp_path / "bom.jac", b"\xef\xbb\xbfx^2\n"),
                                  "--at", "x=3")
    assert (code, out, err) == (0, "9.0\n", "")


def test_unicode_identifier_in_the_program_is_an_error():
    code, out, err = invoke_jacli("eval", "θ + 1")
    assert_one_error(code, out, err, "program:1:1: unexpected character 'θ'",
                     "hint: names are ASCII letters, digits and '_'")


def test_unicode_identifier_in_at_is_an_error():
    code, out, err = invoke_jacli("eval", "x + 1", "--at", "x=1,θ=2")
    assert_one_error(code, out, err, "--at:1:5: 'θ' is not a variable name")


def test_unicode_column_of_points_is_ignored_like_any_unused_column(tmp_path):
    path = write(tmp_path / "p.csv", "θ,x\n7,2\n")
    code, out, err = invoke_jacli("eval", "x^2", "--points", path, "--format", "csv")
    assert (code, out, err) == (0, "x,f1\n2.0,4.0\n", "")


@pytest.mark.parametrize("program, expected", [
    ("1e309 * x", "inf"),      # overflows to inf, as float("1e309") does
    ("1e309 - x", "inf"),
    ("1e-400 + x", "1.0"),     # underflows to 0
    ("1e-400 * x", "0.0"),
])
def test_out_of_range_number_literals_round_as_ieee(program, expected):
    code, out, err = invoke_jacli("eval", program, "--at", "x=1")
    assert (code, out, err) == (0, expected + "\n", "")


def test_out_of_range_literal_gradient():
    code, out, err = invoke_jacli("grad", "1e309 * x + 1e-400 * y", "--at", "x=1,y=1")
    assert (code, out, err) == (0, "inf 0.0\n", "")


@pytest.mark.parametrize("literal", ["0x10", "0b101", "0o17"])
def test_radix_literals_are_an_error(literal):
    code, out, err = invoke_jacli("eval", f"{literal} + x", "--at", "x=1")
    assert_one_error(code, out, err, "program:1:1: hexadecimal, binary and octal literals are "
                     "not accepted")
    assert err.splitlines()[2] == "  " + "^" * len(literal)


@pytest.mark.parametrize("value, expected", [("1e309", "inf"), ("1e-400", "0.0")])
def test_out_of_range_numbers_in_at(value, expected):
    code, out, err = invoke_jacli("eval", "x", "--at", f"x={value}")
    assert (code, out, err) == (0, expected + "\n", "")


def test_hexadecimal_in_at_is_an_error():
    code, out, err = invoke_jacli("eval", "x", "--at", "x=0x10")
    assert_one_error(code, out, err, "--at:1:1: the value of 'x' is not a number: '0x10'")


@pytest.mark.parametrize("program, message", [
    ("sin = x", "program:1:1: 'sin' is a function and cannot be defined"),
    ("let exp = x; exp", "program:1:5: 'exp' is a function and cannot be defined"),
    ("pi = x", "program:1:1: 'pi' is a constant and cannot be defined"),
    ("let e = x; e", "program:1:5: 'e' is a constant and cannot be defined"),
    ("sin + x", "program:1:1: 'sin' is a function: call it as sin(...)"),
    ("let y = x; y = 2", "program:1:12: 'y' is already defined"),
])
def test_a_name_that_shadows_a_function_or_constant(program, message):
    code, out, err = invoke_jacli("eval", program, "--at", "x=1")
    assert_one_error(code, out, err, message)


@pytest.mark.parametrize("program, at, kind", [
    ("x*pi", "x=1,pi=3", "constant"),
    ("sin(x)", "x=1,sin=3", "function"),
])
def test_a_value_for_a_constant_or_function_in_at_says_so(program, at, kind):
    # The program does use pi (or sin): "'pi' is not used by the program" would be
    # confusing. The message should say why it cannot be given a value.
    code, out, err = invoke_jacli("eval", program, "--at", at)
    assert_one_error(code, out, err, kind)


def test_a_points_column_named_like_a_constant_is_ignored(tmp_path):
    # Like any column the program does not use as a variable: pi stays pi.
    path = write(tmp_path / "p.csv", "x,pi\n1,3\n")
    code, out, err = invoke_jacli("eval", "x*pi", "--points", path)
    assert (code, out, err) == (0, f"{math.pi!r}\n", "")


@pytest.mark.parametrize("at, message", [
    (["x=1,x=2,y=1"], "--at:1:5: 'x' is given twice"),
    (["x=1,y=2", "x=3"], "--at:1:1: 'x' is given twice"),
])
def test_a_variable_given_twice_in_at(at, message):
    args = [item for value in at for item in ("--at", value)]
    code, out, err = invoke_jacli("eval", "x*y", *args)
    assert_one_error(code, out, err, message)


# (JSON Lines has no header: there a row giving an --at variable is a bad row, see
# tests/test_input_faults.py.)
@pytest.mark.parametrize("name, text", [("p.csv", "x,y\n1,2\n")])
def test_at_and_points_naming_the_same_variable(tmp_path, name, text):
    target = tmp_path / "out.csv"
    code, out, err = invoke_jacli("eval", "x*y", "--points", write(tmp_path / name, text),
                                  "--at", "y=5", "-o", target)
    assert_one_error(code, out, err, "--points: 'y' is given both by --at and by --points")
    assert not target.exists()


# === 2. --points files ======================================================================

@pytest.mark.parametrize("text", ["", "\n\n", "  \n"], ids=["empty", "blank-lines", "spaces"])
def test_empty_csv_is_an_error(tmp_path, text):
    code, out, err = invoke_jacli("eval", "x*y", "--points", write(tmp_path / "p.csv", text))
    assert_one_error(code, out, err, "p.csv is empty: expected a header row naming the "
                     "variables")


def test_empty_csv_on_stdin_is_an_error():
    code, out, err = invoke_jacli("eval", "x*y", "--points", "-", input="")
    assert_one_error(code, out, err, "standard input is empty")


@pytest.mark.parametrize("fmt, expected", [("plain", ""), ("json", ""), ("csv", "x,y,f1\n")])
@pytest.mark.parametrize("text", ["", "\n"], ids=["empty", "blank-line"])
def test_empty_json_lines_gives_no_results(tmp_path, fmt, expected, text):
    # No lines, no points: like a header-only CSV, zero results and exit 0.
    code, out, err = run_jacli("eval", "x*y", "--points", write(tmp_path / "p.jsonl", text),
                               "--format", fmt)
    assert_no_traceback(err)
    assert (code, out, err) == (0, expected, "")


def test_empty_npy_gives_no_results(tmp_path):
    path = tmp_path / "p.npy"
    np.save(path, np.empty((0, 2)))
    code, out, err = invoke_jacli("eval", "x*y", "--points", path, "--format", "csv")
    assert (code, out, err) == (0, "x,y,f1\n", "")


@pytest.mark.parametrize("fmt, expected", [
    ("plain", ""), ("json", ""), ("csv", "x,y,f1,df1/dx,df1/dy\n")])
@pytest.mark.parametrize("header", ["x,y\n", "x,y"], ids=["newline", "no-newline"])
def test_header_only_csv_gives_no_results(tmp_path, fmt, expected, header):
    path = write(tmp_path / "p.csv", header)
    code, out, err = invoke_jacli("grad", "x*y", "--points", path, "--format", fmt)
    assert (code, out, err) == (0, expected, "")


def test_header_only_csv_to_npy_is_an_empty_array(tmp_path):
    target = tmp_path / "g.npy"
    code, out, err = invoke_jacli("grad", "x*y", "--points", write(tmp_path / "p.csv", "x,y\n"),
                                  "-o", target)
    assert (code, out, err) == (0, "", "")
    assert np.load(target).shape == (0, 2)


def test_missing_column_is_an_error_naming_it(tmp_path):
    code, out, err = invoke_jacli("eval", "x*y", "--points", write(tmp_path / "p.csv", "x\n1\n"))
    assert_one_error(code, out, err, "--points: no value for 'y': ", "p.csv has the columns x")


def test_extra_columns_are_ignored(tmp_path):
    path = write(tmp_path / "p.csv", "id,x,y,note\np7,1,2,anything at all\n")
    code, out, err = invoke_jacli("eval", "x*y", "--points", path, "--format", "csv")
    assert (code, out, err) == (0, "x,y,f1\n1.0,2.0,2.0\n", "")


def test_duplicate_column_is_an_error(tmp_path):
    code, out, err = invoke_jacli("eval", "x", "--points", write(tmp_path / "p.csv", "x,x\n1,2\n"))
    assert_one_error(code, out, err, "p.csv has the column 'x' twice")


def test_ragged_rows_are_bad_rows_kept_as_nan_lines(tmp_path):
    path = write(tmp_path / "p.csv", "x,y\n1,2\n3\n4,5,6\n7,8\n")
    code, out, err = invoke_jacli("eval", "x*y", "--points", path, "--format", "csv")
    assert out == "x,y,f1\n1.0,2.0,2.0\nnan,nan,nan\nnan,nan,nan\n7.0,8.0,56.0\n"
    assert_bad_rows(code, err, {2: "field", 3: "field"}, total=4)
    assert "row 2: has 1 field" in err and "row 3: has 3 fields, the header has 2" in err


def test_nan_and_inf_fields_are_numbers_empty_fields_are_bad_rows(tmp_path):
    path = write(tmp_path / "p.csv", "x,y\nnan,2\ninf,2\n-inf,2\n,2\n1, \n")
    code, out, err = invoke_jacli("eval", "x*y", "--points", path, "--format", "csv")
    assert out == ("x,y,f1\nnan,2.0,nan\ninf,2.0,inf\n-inf,2.0,-inf\n"
                   "nan,nan,nan\nnan,nan,nan\n")
    assert_bad_rows(code, err, {4: "the value of 'x' is not a number: ''",
                                5: "the value of 'y' is not a number: ''"}, total=5)


def test_non_numeric_fields_are_bad_rows(tmp_path):
    path = write(tmp_path / "p.csv", "x,y\n1,abc\n2,3\n0x10,1\n1_0,2\n")
    code, out, err = invoke_jacli("eval", "x*y", "--points", path)
    assert out == "nan\n6.0\nnan\nnan\n"
    assert_bad_rows(code, err, {1: "the value of 'y' is not a number: 'abc'",
                                3: "the value of 'x' is not a number: '0x10'",
                                4: "the value of 'x' is not a number: '1_0'"}, total=4)


def test_bad_rows_in_json_output(tmp_path):
    path = write(tmp_path / "p.csv", "x,y\n1,2\nfoo,3\n")
    code, out, err = invoke_jacli("eval", "x*y", "--points", path, "--format", "json")
    records = json_lines(out)
    assert records[0]["value"] == [2.0]
    assert records[1] == {"row": 2, "error": "the value of 'x' is not a number: 'foo'"}
    assert_bad_rows(code, err, {2: "'foo'"}, total=2)


def test_nul_byte_in_a_points_field_is_a_bad_row(tmp_path):
    path = write(tmp_path / "p.csv", b"x,y\n1,2\n3\0,4\n5,6\n")
    code, out, err = invoke_jacli("eval", "x*y", "--points", path)
    assert out == "2.0\nnan\n30.0\n"
    assert_bad_rows(code, err, {2: "the value of 'x' is not a number: '3\\x00'"}, total=3)


def test_a_non_utf8_row_is_a_bad_row(tmp_path):
    path = write(tmp_path / "latin1.csv", b"x,y\n1,2\n\xe9,4\n5,6\n")
    code, out, err = invoke_jacli("eval", "x", "--points", path)
    assert code == 1
    assert out == "1.0\nnan\n5.0\n"
    assert "row 2: is not UTF-8 text" in err


@pytest.mark.parametrize("name, data", [
    ("latin1-header.csv", b"x,\xe9\n1,2\n"),
    ("utf16.csv", "x,y\n1,2\n".encode("utf-16")),
])
def test_non_utf8_points_file_is_an_error(tmp_path, name, data):
    code, out, err = invoke_jacli("eval", "x", "--points", write(tmp_path / name, data))
    assert_one_error(code, out, err, f"{name} is not UTF-8 text")


def test_non_utf8_points_file_says_where(tmp_path):
    # One Latin-1 byte in row 5,001 of 10,000 (byte 33,898 of the file). The message
    # must point at it: the row (or line, or the byte offset in the file), not an
    # offset into an internal read buffer ("byte 1130 of a block").
    rows = ["x,y"] + [f"{i},1" for i in range(10_000)]
    rows[5001] = "5000\xe9,1"
    path = write(tmp_path / "p.csv", ("\n".join(rows) + "\n").encode("latin-1"))
    code, out, err = invoke_jacli("eval", "x*y", "--points", path)
    assert code in (1, 2), err
    assert_no_traceback(err)
    assert "UTF-8" in err
    assert "block" not in err, err
    assert any(where in err for where in ("row 5001", "line 5002", "byte 33898")), err


@pytest.mark.parametrize("name, data", [
    ("crlf.csv", b"x,y\r\n1,2\r\n3,4\r\n"),
    ("crlf.jsonl", b'{"x": 1, "y": 2}\r\n{"x": 3, "y": 4}\r\n'),
])
def test_crlf_points_files(tmp_path, name, data):
    code, out, err = invoke_jacli("eval", "x*y", "--points", write(tmp_path / name, data))
    assert (code, out, err) == (0, "2.0\n12.0\n", "")


@pytest.mark.parametrize("name, data", [
    ("bom.csv", b"\xef\xbb\xbfx,y\n1,2\n"),
    ("bom.jsonl", b'\xef\xbb\xbf{"x": 1, "y": 2}\n'),
])
def test_utf8_bom_in_points_is_skipped(tmp_path, name, data):
    code, out, err = invoke_jacli("eval", "x*y", "--points", write(tmp_path / name, data),
                                  "--format", "csv")
    assert (code, out, err) == (0, "x,y,f1\n1.0,2.0,2.0\n", "")


def test_utf8_bom_in_points_on_stdin_is_skipped():
    code, out, err = invoke_jacli("eval", "x*y", "--points", "-", input=b"\xef\xbb\xbfx,y\n1,2\n")
    assert (code, out, err) == (0, "2.0\n", "")


def test_quoted_fields(tmp_path):
    path = write(tmp_path / "p.csv", '"x","y"\n"1","2"\n" 3 ",4\n')
    code, out, err = invoke_jacli("eval", "x*y", "--points", path, "--format", "csv")
    assert (code, out, err) == (0, "x,y,f1\n1.0,2.0,2.0\n3.0,4.0,12.0\n", "")


def test_quoted_comma_and_unbalanced_quote_are_bad_rows(tmp_path):
    # A quoted "3,5" is one field that is not a number; an unbalanced quote spoils only
    # its own line.
    path = write(tmp_path / "p.csv", 'x,y\n1,2\n"3,5",1\n"4,1\n5,6\n')
    code, out, err = invoke_jacli("eval", "x*y", "--points", path)
    assert out == "2.0\nnan\nnan\n30.0\n"
    assert_bad_rows(code, err, {2: "the value of 'x' is not a number: '3,5'",
                                3: "field"}, total=4)


@pytest.mark.parametrize("text", ["x,y\n1,2\n3,4", "x,y\n1,2\n3,4\n", "x,y\n1,2\n3,4\n\n\n"],
                         ids=["no-newline", "newline", "blank-lines"])
def test_trailing_newline_or_none(tmp_path, text):
    code, out, err = invoke_jacli("eval", "x*y", "--points", write(tmp_path / "p.csv", text))
    assert (code, out, err) == (0, "2.0\n12.0\n", "")


def test_blank_line_between_rows_is_a_bad_row(tmp_path):
    path = write(tmp_path / "p.csv", "x,y\n1,2\n\n3,4\n")
    code, out, err = invoke_jacli("eval", "x*y", "--points", path)
    assert out == "2.0\nnan\n12.0\n"
    assert_bad_rows(code, err, {2: "has 0 fields, the header has 2"}, total=3)


JSONL = "\n".join([
    '{"x": 1, "y": 2}',     # 1 good
    "[1, 2]",               # 2 not an object
    "3",                    # 3
    '"x"',                  # 4
    "null",                 # 5
    "{not json",            # 6
    '{"x": "a", "y": 1}',   # 7 not a number
    '{"x": true, "y": 1}',  # 8
    '{"x": null, "y": 1}',  # 9
    '{"x": [1], "y": 1}',   # 10
    '{"x": {}, "y": 1}',    # 11
    '{"x": 2}',             # 12 missing y
    '{"x": "inf", "y": 1}',  # 13 good: strings inf/-inf/nan are numbers
    '{"x": 1e400, "y": 1}',  # 14 good: overflows to inf
    '{"x": "1.5", "y": 2}',  # 15 good: a number in a string
]) + "\n"
JSONL_BAD = {2: "is not a JSON object", 3: "is not a JSON object", 4: "is not a JSON object",
             5: "is not a JSON object", 6: "is not a JSON object",
             7: "the value of 'x' is not a number: \"a\"",
             8: "the value of 'x' is not a number: true",
             9: "the value of 'x' is not a number: null",
             10: "the value of 'x' is not a number: [1]",
             11: "the value of 'x' is not a number: {}",
             12: "has no value for 'y'"}


def test_json_lines_with_non_objects_and_non_numbers(tmp_path):
    code, out, err = invoke_jacli("eval", "x*y", "--points", write(tmp_path / "p.jsonl", JSONL))
    assert out.splitlines() == ["2.0"] + ["nan"] * 11 + ["inf", "inf", "3.0"]
    assert_bad_rows(code, err, JSONL_BAD, total=15)


def test_json_lines_bad_rows_in_json_output(tmp_path):
    code, out, err = invoke_jacli("eval", "x*y", "--points", write(tmp_path / "p.jsonl", JSONL),
                                  "--format", "json")
    records = json_lines(out)
    assert len(records) == 15
    for row, message in JSONL_BAD.items():
        assert records[row - 1] == {"row": row, "error": message}
    assert [r["value"] for r in records if "value" in r] == [[2.0], ["inf"], ["inf"], [3.0]]
    assert code == 1


def _save(path, array, **kwargs):
    np.save(path, array, **kwargs)
    return path


@pytest.mark.parametrize("array, shape", [
    (np.ones((2, 3)), "(2, 3)"),
    (np.ones(3), "(3,)"),
    (np.ones((2, 2, 2)), "(2, 2, 2)"),
    (np.float64(3.0), "()"),
], ids=["extra-column", "1-d", "3-d", "scalar"])
def test_npy_of_the_wrong_shape(tmp_path, array, shape):
    path = _save(tmp_path / "p.npy", array)
    code, out, err = invoke_jacli("eval", "x*y", "--points", path)
    assert_one_error(code, out, err, f"p.npy has shape {shape}; expected (B, 2) with columns "
                     "x, y (the --wrt order)")


@pytest.mark.parametrize("array, message", [
    (np.array([["a", "b"]]), "p.npy holds <U1, not numbers"),
    (np.ones((2, 2), dtype=complex), "p.npy holds complex128, not numbers"),
    (np.array([[1, None]], dtype=object), "p.npy is not a NumPy .npy file of numbers"),
], ids=["str", "complex", "object"])
def test_npy_of_the_wrong_dtype(tmp_path, array, message):
    path = _save(tmp_path / "p.npy", array, allow_pickle=True)
    code, out, err = invoke_jacli("eval", "x*y", "--points", path)
    assert_one_error(code, out, err, message)


def test_npy_that_is_not_npy(tmp_path):
    path = write(tmp_path / "p.npy", "x,y\n1,2\n")
    code, out, err = invoke_jacli("eval", "x*y", "--points", path)
    assert_one_error(code, out, err, "p.npy is not a NumPy .npy file of numbers")


@pytest.mark.parametrize("array", [np.array([[1, 2], [3, 4]], dtype=np.int32),
                                   np.array([[True, False], [True, True]])],
                         ids=["int", "bool"])
def test_npy_of_integers_or_booleans_is_read_as_numbers(tmp_path, array):
    code, out, err = invoke_jacli("eval", "x*y", "--points", _save(tmp_path / "p.npy", array))
    expected = "".join(f"{float(a) * float(b)!r}\n" for a, b in array)
    assert (code, out, err) == (0, expected, "")


def test_one_dimensional_npy_for_one_variable(tmp_path):
    path = _save(tmp_path / "p.npy", np.array([1.0, 2.0, 3.0]))
    code, out, err = invoke_jacli("grad", "x^2", "--points", path)
    assert (code, out, err) == (0, "2.0\n4.0\n6.0\n", "")


# === 3. Unix manners =========================================================================

BIG_ROWS = 500_000


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "big.csv"
    path.write_text("x,y\n" + "".join(f"{i},{i % 7}\n" for i in range(BIG_ROWS)))
    return path


def test_head_1_ends_quietly(big_csv):
    script = (f"set -o pipefail; {PYTHON_JACLI} eval x --points {shlex.quote(str(big_csv))} "
              "| head -1; echo \"jacli=${PIPESTATUS[0]}\"")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                          env=_env(), timeout=120)
    assert done.stdout.splitlines()[0] == "0.0"
    status = done.stdout.splitlines()[-1]
    assert status in ("jacli=141", "jacli=0"), (status, done.stderr)
    assert done.stderr == ""


def test_head_1_of_json_ends_quietly(big_csv):
    script = (f"{PYTHON_JACLI} grad 'x*y' --points {shlex.quote(str(big_csv))} --format json "
              "| head -1; echo \"jacli=${PIPESTATUS[0]}\"")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                          env=_env(), timeout=120)
    lines = done.stdout.splitlines()
    assert json.loads(lines[0])["gradient"] == [0.0, 0.0]
    assert lines[-1] in ("jacli=141", "jacli=0"), (lines[-1], done.stderr)
    assert done.stderr == ""


def test_ctrl_c_exits_130_without_a_traceback(big_csv):
    process = subprocess.Popen(
        [sys.executable, "-m", "jacli", "grad", "x*y", "--points", str(big_csv), "--format", "csv"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    try:
        # Wait until jacli is writing results (imports done, points being read), then
        # stop reading: it is mid-run, computing or blocked on the full pipe.
        assert process.stdout.readline().startswith(b"x,y,f1,")
        time.sleep(0.3)
        assert process.poll() is None, "jacli finished before the interrupt"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    err = err.decode("utf-8", "replace")
    assert process.returncode == 130, err
    assert_no_traceback(err)
    assert "KeyboardInterrupt" not in err


def test_closed_stdout_is_a_clear_error():
    done = subprocess.run(["sh", "-c", f"{PYTHON_JACLI} eval x --at x=1 >&-"],
                          capture_output=True, text=True, env=_env(), timeout=60)
    assert done.returncode == 1, done.stderr
    assert_no_traceback(done.stderr)
    assert done.stderr == ("jacli: standard output is closed: nothing to write the results "
                           "to (use -o PATH)\n")


def test_closed_stdout_with_output_file_works(tmp_path):
    target = tmp_path / "out.txt"
    done = subprocess.run(["sh", "-c", f"{PYTHON_JACLI} eval x --at x=1 -o "
                           f"{shlex.quote(str(target))} >&-"],
                          capture_output=True, text=True, env=_env(), timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    assert target.read_text() == "1.0\n"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_stdout_is_a_clear_error():
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "jacli", "eval", "x", "--at", "x=1"],
                              stdout=full, stderr=subprocess.PIPE, text=True, env=_env(),
                              timeout=60)
    assert done.returncode == 1, done.stderr
    assert_no_traceback(done.stderr)
    assert done.stderr == "jacli: cannot write standard output: No space left on device\n"


@pytest.mark.parametrize("make, reason", [
    (lambda tmp: tmp / "no-such-dir" / "out.csv", "No such file or directory"),
    (lambda tmp: write(tmp / "file", "") / "out.csv", "Not a directory"),
    (lambda tmp: tmp, "Is a directory"),
], ids=["missing-directory", "parent-is-a-file", "a-directory"])
def test_unwritable_output_names_the_path(tmp_path, make, reason):
    target = str(make(tmp_path))
    code, out, err = run_jacli("eval", "x", "--at", "x=1", "-o", target)
    assert_one_error(code, out, err, f"-o: cannot write {target}: {reason}")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root can write into a read-only directory")
def test_output_into_a_read_only_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        target = str(locked / "out.csv")
        code, out, err = run_jacli("eval", "x", "--at", "x=1", "-o", target)
        assert_one_error(code, out, err, f"-o: cannot write {target}: Permission denied")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)

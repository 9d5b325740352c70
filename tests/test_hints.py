"""Hints for the usual mistakes: exit 2, a caret where there is text, one line of advice
(issue 12 items 6-12; issue 10 item 7: the language is ASCII)."""

from __future__ import annotations

import pytest

from jacli.errors import JacliError
from jacli.parse import parse


def error_of(source: str) -> JacliError:
    with pytest.raises(JacliError) as info:
        parse(source)
    return info.value


def caret(error: JacliError) -> str:
    """The source text under the caret."""
    return error.source[error.span[0]:error.span[1]]


def fails(invoke, *args, input=None) -> str:
    """Run jacli; it must exit 2 with nothing on standard output. Its standard error."""
    code, out, err = invoke(*args, input=input)
    assert code == 2, (code, out, err)
    assert out == ""
    assert "Traceback" not in err
    return err


# --- the language is ASCII (issue 10 item 7; issue 12 item 9) ----------------------------

@pytest.mark.parametrize("digit", ["\u0663", "\u06f3", "\u0969", "\uff13", "\U0001d7d1"])
def test_a_unicode_digit_is_an_unexpected_character_not_a_number(digit, invoke_jacli):
    # Arabic-Indic, extended Arabic-Indic, Devanagari, full-width and mathematical threes:
    # Python's float() and \d take them all for 3; the language does not.
    err = fails(invoke_jacli, "eval", f"x + {digit}", "--at", "x=1")
    assert f"program:1:5: unexpected character {digit!r}" in err
    assert "hint: write 3 for" in err
    error = error_of(f"2{digit}")
    assert caret(error) == digit


def test_a_unicode_digit_inside_a_number_is_refused_where_it_stands():
    error = error_of("x + 1\u0663")
    assert error.message == "unexpected character '\u0663'" and error.span == (5, 6)


@pytest.mark.parametrize("char, ascii_form", [
    ("\u2212", "-"), ("\u00d7", "*"), ("\u00b7", "*"), ("\u00f7", "/"), ("\u03c0", "pi"),
    ("\u00b2", "^2"), ("\u00b3", "^3"), ("\u221a", "sqrt(...)")])
def test_a_look_alike_names_its_ascii_form(char, ascii_form):
    error = error_of(f"x {char} 2")
    assert error.message == f"unexpected character {char!r}"
    assert caret(error) == char
    assert error.hint.startswith(f"write {ascii_form} for {char!r} (U+{ord(char):04X}")


def test_look_alikes_in_at_values_name_the_ascii_form_under_a_caret(invoke_jacli):
    err = fails(invoke_jacli, "eval", "x", "--at", "x=\u22121")
    assert "--at:1:3: the value of 'x' is not a number: '\u22121'" in err
    assert "\n  x=\u22121\n    ^\n" in err
    assert "hint: write - for '\u2212'" in err
    err = fails(invoke_jacli, "eval", "x", "--at", "x=\u03c0/4")
    assert "hint: write pi for '\u03c0'" in err


def test_a_greek_letter_name_keeps_the_names_hint():
    assert error_of("\u03b1 + 1").hint == "names are ASCII letters, digits and '_'"


# --- calls, definitions and aliases (issue 12 item 9) --------------------------------------

@pytest.mark.parametrize("source, hint, under", [
    ("sin x", "did you mean sin(x)?", "sin x"),
    ("2*cos y + 1", "did you mean cos(y)?", "cos y"),
    ("sin cos(x)", "did you mean sin(cos(x))?", "sin cos(x)"),
    ("exp 2", "did you mean exp(2)?", "exp 2"),
    ("ln x", "did you mean log(x)?", "ln x"),
])
def test_a_function_name_before_an_operand_suggests_a_call_not_a_product(source, hint, under):
    error = error_of(source)
    assert error.hint == hint
    assert "*" not in error.hint
    assert caret(error) == under


@pytest.mark.parametrize("source, hint, under", [
    ("f(x) = x^2", "write f = x^2: a named output of its variables", "f(x)"),
    ("y = 1\ng(a, b) = a*b  # product", "write g = a*b: a named output of its variables",
     "g(a, b)"),
    ("let h(t) = t + 1; h", "write let h = t + 1: a named intermediate of its variables",
     "h(t)"),
])
def test_a_function_definition_says_user_functions_are_not_in_the_language(source, hint,
                                                                             under):
    error = error_of(source)
    assert error.message == "user-defined functions are not part of the language"
    assert error.hint == hint
    assert caret(error) == under


@pytest.mark.parametrize("source, hint", [
    ("ln(x)", "did you mean log(x)?"),
    ("arctan(x/2)", "did you mean atan(x/2)?"),
    ("arcsin(x)", "did you mean asin(x)?"),
    ("sqr(x)", "did you mean x^2 (or sqrt(x))?"),
    ("pow2(x + 1)", "did you mean (x + 1)^2?"),
    ("pow2(sin(x))", "did you mean sin(x)^2?"),
    ("sgn(x)", "did you mean sign(x)?"),
    ("arctan2(y, x)", "did you mean atan2(y, x)?"),
    ("Sin(x)", "did you mean sin(x)?"),
])
def test_common_aliases_suggest_the_jacli_function(source, hint):
    error = error_of(source)
    assert error.message.startswith("unknown function")
    assert error.hint == hint


def test_an_unknown_name_that_is_no_alias_still_gets_the_closest_names():
    assert error_of("sine(x)").hint == "did you mean sin, sinh, sign?"


def test_implicit_multiplication_of_variables_keeps_its_hint():
    assert error_of("x y").hint == "write x*y"
    assert error_of("2(x+1)").hint == "write 2*(x+1)"


# --- --at values (issue 12 item 8) ----------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("pi/4", 0.7853981633974483),            # math.pi / 4
    ("1/3", 1 / 3),
    ("-2e-3", -0.002),
    ("2*pi", 6.283185307179586),
    ("sqrt(2)", 1.4142135623730951),         # correctly rounded sqrt(2)
    ("atan2(1, 1)", 0.7853981633974483),     # a comma inside parentheses does not split
    ("-(1 + 2)^2", -9.0),                     # the language's precedence: -(9)
    ("2^3^2", 512.0),
    ("e", 2.718281828459045),
])
def test_at_values_may_be_constant_expressions_of_the_language(text, value, invoke_jacli):
    from jacli.points import parse_at

    assert parse_at([f"theta={text}"]) == {"theta": value}
    code, out, _ = invoke_jacli("eval", "theta", "--at", f"theta={text}")
    assert code == 0 and float(out) == value


def test_an_at_value_naming_a_variable_is_refused_with_a_hint(invoke_jacli):
    err = fails(invoke_jacli, "eval", "x", "--at", "x=y+1")
    assert "the value of 'x' must be a constant: 'y' is a variable" in err
    assert "hint: --at values are numbers or constant expressions, e.g. pi/4" in err


def test_an_at_value_is_never_evaluated_by_python(invoke_jacli):
    for text in ("__import__('os')", "1 if 1 else 2", "[1][0]", "0x10", "1_0"):
        err = fails(invoke_jacli, "eval", "x", "--at", f"x={text}")
        assert f"the value of 'x' is not a number" in err


def test_a_decimal_comma_says_to_use_a_dot(invoke_jacli):
    err = fails(invoke_jacli, "eval", "x", "--at", "x=1,5")
    assert "--at:1:5: expected name=value, got '5'" in err
    assert "\n  x=1,5\n      ^\n" in err
    assert "hint: a decimal point is a dot: x=1.5" in err


def test_values_separated_by_spaces_in_one_at_say_to_use_commas(invoke_jacli):
    err = fails(invoke_jacli, "eval", "x+y", "--at", "x=1 y=2")
    assert "hint: separate the values with commas: x=1,y=2" in err


@pytest.mark.parametrize("args", [
    ("--at", "x=1", "y=2"),              # a second argument
    ("--at", "x=1,", "y=2"),             # a comma and a space
])
def test_at_values_in_two_arguments_say_what_was_meant(args, invoke_jacli):
    err = fails(invoke_jacli, "eval", "x+y", *args)
    assert "'y=2' is not part of the --at before it" in err
    assert "hint: write --at x=1,y=2" in err
    err = fails(invoke_jacli, "eval", *args, "x+y")   # the program last
    assert "hint: write --at x=1,y=2" in err


def test_a_named_output_after_at_is_still_the_program(invoke_jacli):
    assert invoke_jacli("eval", "--at", "x=2", "y = 3*x") == (0, "6.0\n", "")


# --- a program argument that is a file (issue 12 item 6) -----------------------------------

def test_a_program_argument_that_is_a_file_suggests_minus_f(invoke_jacli, tmp_path,
                                                            monkeypatch):
    from conftest import REPO

    monkeypatch.chdir(REPO)
    err = fails(invoke_jacli, "grad", "samples/rosenbrock.jac", "--at", "x=1,y=1,a=1,b=100")
    assert "program:1:19: unexpected character '.'" in err
    assert err.endswith("  hint: did you mean -f samples/rosenbrock.jac?\n")
    (tmp_path / "my prog").write_text("x^2\n")
    monkeypatch.chdir(tmp_path)
    err = fails(invoke_jacli, "eval", "my prog", "--at", "x=1")
    assert "hint: did you mean -f 'my prog'?" in err


def test_a_program_that_parses_is_run_even_if_a_file_has_its_name(invoke_jacli, tmp_path,
                                                                   monkeypatch):
    (tmp_path / "x").write_text("not a program (\n")
    monkeypatch.chdir(tmp_path)
    assert invoke_jacli("eval", "x", "--at", "x=2") == (0, "2.0\n", "")


# --- programs that start with '-' (issue 12 item 7) ----------------------------------------

@pytest.mark.parametrize("program, expected", [
    ("-x^2", "-2.0"), ("-2*x", "-2.0"), ("-(x+1)", "-1.0"), ("- x", "-1.0"),
    ("-sin(x)^2 + sin(x)^2 - x", "-1.0"), ("-1", "0.0"), ("-.5*x^2", "-1.0"),
])
def test_a_program_starting_with_minus_that_cannot_be_an_option_just_works(program, expected,
                                                                            invoke_jacli):
    # grad of each at x=1, worked by hand: d(-x^2) = -2x, d(-2x) = -2, d(-(x+1)) = -1, ...
    for args in ((program, "--at", "x=1", "--allow-unused"),
                 ("--at", "x=1", program, "--allow-unused"),
                 ("--allow-unused", "--at=x=1", program, "--format", "plain")):
        code, out, err = invoke_jacli("grad", *args)
        if expected == "0.0":   # `-1` has no variable: nothing to differentiate
            assert code in (0, 2) and "No such option" not in err
            continue
        assert (code, out.strip(), err) == (0, expected, ""), args


def test_option_values_that_start_with_minus_stay_values(invoke_jacli, tmp_path,
                                                         monkeypatch):
    from conftest import REPO

    code, _, err = invoke_jacli("check", "x^2", "--at", "x=1", "--rtol", "1e-3",
                                "--atol", "-0", "--format", "plain")
    assert code == 0, err
    assert invoke_jacli("eval", "x*y", "--at", "x=-1", "--at", "y=-2") == (0, "2.0\n", "")
    out_file = tmp_path / "o.csv"
    code, _, err = invoke_jacli("eval", "x", "--at", "x=3", f"-o{out_file}")
    assert code == 0 and out_file.read_text() == "x,f1\n3.0,3.0\n"
    monkeypatch.chdir(REPO)      # -fPATH: a short option with its value attached
    assert invoke_jacli("eval", "-fsamples/polar.jac", "--at", "x=3,y=4") == \
        (0, "5.0 0.9272952180016122\n", "")


def test_a_lone_minus_name_gets_the_double_dash_hint(invoke_jacli):
    err = fails(invoke_jacli, "grad", "-x", "--at", "x=1")
    assert err == ("jacli: error: command line: no such option: -x\n"
                   "  hint: a program that starts with '-' goes after '--': "
                   "jacli grad --at x=1 -- -x\n")
    assert invoke_jacli("grad", "--at", "x=1", "--", "-x") == (0, "-1.0\n", "")


def test_options_after_double_dash_get_a_hint_to_put_them_before(invoke_jacli):
    err = fails(invoke_jacli, "grad", "--", "-x^2", "--at", "x=1", "--format", "json")
    assert "options after '--' are not read as options: --at" in err
    assert "hint: put options before '--': jacli grad --at x=1 --format json -- '-x^2'" in err


def test_help_and_usage_errors_are_unchanged(invoke_jacli):
    code, out, _ = invoke_jacli("grad", "--help")
    assert code == 0 and "--at" in out
    code, _, err = invoke_jacli("grad", "x", "--frobnicate")
    assert code == 2 and "No such option: --frobnicate" in err


# --- choices are case-blind (issue 12 item 9) ----------------------------------------------

def test_choices_are_accepted_whatever_their_case(invoke_jacli):
    code, out, _ = invoke_jacli("eval", "x", "--at", "x=1", "--format", "JSON")
    assert code == 0 and out.startswith('{"inputs": ["x"]')
    assert invoke_jacli("jac", "x", "--at", "x=1", "--mode", "Forward")[:2] == (0, "1.0\n")
    assert invoke_jacli("diff", "x^2", "--format", "JACLI") == invoke_jacli("diff", "x^2")
    code, out, _ = invoke_jacli("graph", "x", "--format", "Mermaid")
    assert code == 0 and out.startswith("flowchart")


# --- points without a header, sniffed formats, tsv/ssv (issue 12 item 10) ------------------

def test_points_without_a_header_say_which_header_would_work(invoke_jacli):
    err = fails(invoke_jacli, "grad", "x", "--points", "-", input="0\n1\n2\n3\n4\n")
    assert err == ("jacli: error: --points: the first row of standard input must name the "
                   "variables; it holds numbers (0)\n"
                   "  hint: start it with the header row 'x', or pass --columns x\n")
    err = fails(invoke_jacli, "eval", "x*y", "--points", "-", input="1,2\n3,4\n")
    assert "hint: start it with the header row 'x,y', or pass --columns x,y" in err
    # ... and the header it shows does work:
    assert invoke_jacli("eval", "x*y", "--points", "-", input="x,y\n1,2\n3,4\n")[:2] == \
        (0, "2.0\n12.0\n")


def test_columns_names_the_columns_of_headerless_text_points(invoke_jacli):
    assert invoke_jacli("eval", "x - y", "--points", "-", "--columns", "y,x",
                        input="1,2\n3,5\n")[:2] == (0, "1.0\n2.0\n")
    err = fails(invoke_jacli, "eval", "x*z", "--points", "-", "--columns", "x,y",
                input="1,2\n")
    assert "no value for 'z': --columns names x, y" in err


def test_json_lines_on_standard_input_are_told_by_their_first_byte(invoke_jacli):
    code, out, err = invoke_jacli("eval", "x*y", "--points", "-",
                                  input='\ufeff {"x": 2, "y": 3}\n{"x": 1, "y": 0.5}\n')
    assert (code, out, err) == (0, "6.0\n0.5\n", "")


def test_text_points_told_by_their_first_bytes_keep_those_bytes_from_a_pipe_or_a_file(
        run_jacli, tmp_path):
    # The line reader reads the descriptor itself: the bytes peeked to tell the format
    # (8 KiB of them, in Python's buffer) must still reach it. A real pipe and file.
    rows = "x,y\n" + "".join(f"{i},{2 * i}\n" for i in range(3000))
    expected = "".join(f"{3.0 * i}\n" for i in range(3000))
    assert run_jacli("eval", "x + y", "--points", "-", input=rows) == (0, expected, "")
    path = tmp_path / "points.txt"   # an ending that tells nothing
    path.write_text(rows)
    assert run_jacli("eval", "x + y", "--points", path) == (0, expected, "")
    jsonl = "".join(f'{{"x": {i}}}\n' for i in range(3000))
    assert run_jacli("eval", "x * 2", "--points", "-", input=jsonl) == \
        (0, "".join(f"{2.0 * i}\n" for i in range(3000)), "")


def test_npy_on_standard_input_is_told_by_its_magic(invoke_jacli):
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert invoke_jacli("eval", "x*y", "--points", "-", input=buffer.getvalue())[:2] == \
        (0, "2.0\n12.0\n")


def test_jacli_reads_its_own_plain_output_as_space_separated_points(invoke_jacli):
    code, plain, _ = invoke_jacli("eval", "a = x; b = x^2", "--points", "-",
                                  input="x\n1\n2\n3\n")
    assert plain == "1.0 1.0\n2.0 4.0\n3.0 9.0\n"
    code, out, err = invoke_jacli("eval", "b - a", "--points", "-", "--points-format", "ssv",
                                  "--columns", "a,b", input=plain)
    assert (code, out, err) == (0, "0.0\n2.0\n6.0\n", "")
    code, out, _ = invoke_jacli("eval", "a*b", "--points", "-", "--points-format", "SSV",
                                input="  a    b\n 2   3 \n")
    assert (code, out) == (0, "6.0\n")


def test_tab_separated_points_are_told_by_tsv(invoke_jacli, tmp_path):
    points = tmp_path / "p.tsv"
    points.write_text("id\tx\ty\np,1\t2\t3\n\t4\t\n")   # a comma inside a field; an empty one
    code, out, err = invoke_jacli("eval", "x*y", "--points", str(points))
    assert (code, out) == (1, "6.0\nnan\n")
    assert "row 2: the value of 'y' is not a number: ''" in err
    code, out, _ = invoke_jacli("eval", "x*y", "--points", "-", "--points-format", "tsv",
                                input="x\ty\n2\t5\n")
    assert (code, out) == (0, "10.0\n")


# --- .npy and .npz points (issue 12 item 11) ----------------------------------------------

def test_a_missing_npy_says_no_such_file_as_csv_does(invoke_jacli, tmp_path):
    for name in ("gone.npy", "gone.csv", "gone.npz"):
        err = fails(invoke_jacli, "eval", "x", "--points", str(tmp_path / name))
        assert f"cannot read points file {tmp_path / name}: No such file or directory" in err


def test_npz_points_are_named_arrays_one_per_variable(invoke_jacli, tmp_path):
    import numpy as np

    path = tmp_path / "p.npz"
    np.savez(path, y=np.array([2.0, 3.0]), x=np.array([[1.0], [5.0]]), id=np.array(["a", "b"]))
    code, out, err = invoke_jacli("grad", "x*y^2", "--points", str(path), "--wrt", "x,y")
    # d/dx = y^2, d/dy = 2xy
    assert (code, out, err) == (0, "4.0 4.0\n9.0 30.0\n", "")
    err = fails(invoke_jacli, "eval", "x*z", "--points", str(path))
    assert "no value for 'z': " in err and "has the arrays y, x, id" in err
    np.savez(path, x=np.ones(2), y=np.ones(3))
    err = fails(invoke_jacli, "eval", "x*y", "--points", str(path))
    assert "differ in length" in err


def test_npy_columns_name_parameters_beside_a_wrt_subset(invoke_jacli, tmp_path):
    import numpy as np

    path = tmp_path / "p.npy"
    np.save(path, np.array([[1.0, 2.0, 10.0], [3.0, 4.0, 20.0]]))
    code, out, err = invoke_jacli("grad", "(x1 + 2*x2)*y", "--points", str(path),
                                  "--wrt", "x1,x2", "--columns", "x1,x2,y")
    assert (code, out, err) == (0, "10.0 20.0\n20.0 40.0\n", "")
    err = fails(invoke_jacli, "grad", "x1*y", "--points", str(path), "--columns", "x1,x2")
    assert "no value for 'y': --columns names x1, x2" in err


# --- help and messages name only what a user has (issue 12 item 12) -----------------------

COMMANDS = ["eval", "grad", "jac", "hess", "jvp", "vjp", "tape", "check", "diff", "graph"]


def help_of(invoke, command: str) -> str:
    code, out, _ = invoke(command, "--help")
    assert code == 0
    return out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_help_ends_with_the_functions_and_operators(command, invoke_jacli):
    from jacli.prims import FUNCTIONS

    out = help_of(invoke_jacli, command)
    language = out[out.index("The language:"):]
    assert out.rstrip().endswith("# starts a comment.")
    for name in FUNCTIONS:
        assert f" {name}" in language, name
    for operator in ("+ -", "* /", "^ (or **", "pi e"):
        assert operator in language


def test_tape_and_graph_help_do_not_mention_points(invoke_jacli):
    for command in ("tape", "graph"):
        assert "points" not in help_of(invoke_jacli, command).lower()


def test_check_help_does_not_offer_npy_or_npz_output(invoke_jacli):
    out = help_of(invoke_jacli, "check")
    output_help = out[out.index("--output PATH"):out.index("--allow-unused")]
    assert ".npy" not in output_help and ".npz" not in output_help and ".csv" in output_help
    code, _, err = invoke_jacli("check", "x", "--at", "x=1", "-o", "c.npy")
    assert code == 2   # and it is refused, as the help says


def test_eval_help_lists_wrt_only_for_what_it_does(invoke_jacli, tmp_path):
    import numpy as np

    out = help_of(invoke_jacli, "eval")
    wrt_help = " ".join(out[out.index("--wrt"):out.index("--out")].split())
    assert "differentiate" not in wrt_help and "columns of .npy points" in wrt_help
    path = tmp_path / "p.npy"
    np.save(path, np.array([[1.0, 10.0]]))
    assert invoke_jacli("eval", "x - y", "--points", str(path), "--wrt", "y,x")[:2] == \
        (0, "9.0\n")


def test_the_help_examples_use_files_that_exist(invoke_jacli):
    import shlex

    from conftest import REPO

    for command in COMMANDS:
        examples = help_of(invoke_jacli, command).split("Examples:")[1].split("The language:")[0]
        for line in examples.splitlines():
            if "$ jacli" not in line:
                continue
            words = shlex.split(line.split("$ ", 1)[1].split("|")[0].split("#")[0],
                                comments=False)
            for flag, path in zip(words, words[1:]):
                if flag in ("-f", "--points") and path != "-":
                    assert (REPO / path).is_file(), (command, path)


def test_no_message_names_a_spec_file(invoke_jacli):
    code, _, err = invoke_jacli("check", "relu(x)", "--at", "x=0")
    assert code == 1 and ".md" not in err
    assert "README: Non-differentiable points" in err


def test_npz_on_standard_input_is_told_by_its_first_bytes(invoke_jacli):
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, x=np.array([1.0, 2.0]), y=np.array([3.0, 4.0]))
    assert invoke_jacli("grad", "x*y", "--points", "-", input=buffer.getvalue()) == \
        (0, "3.0 1.0\n4.0 2.0\n", "")


def test_two_programs_are_not_taken_for_an_at_list(invoke_jacli):
    code, _, err = invoke_jacli("eval", "--at", "x=1", "y = 2*x", "z")
    assert code == 2 and "not part of the --at" not in err


def test_a_real_run_reads_a_minus_program_and_hints_at_options_after_dashes(run_jacli):
    # `jacli COMMAND ...` builds an app of that one command (cli._app_for): the same rules.
    assert run_jacli("grad", "-x^2", "--at", "x=1") == (0, "-2.0\n", "")
    code, out, err = run_jacli("grad", "--", "-x^2", "--at", "x=1")
    assert (code, out) == (2, "") and "put options before '--'" in err

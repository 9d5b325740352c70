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

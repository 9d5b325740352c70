"""Parsing (jacli/parse.py), checked through values and derivatives derived by hand,
against the language contract in shared/spec/language.md."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import jacli
from jacli import JacliError
from jacli.parse import parse


def value(src, **point):
    """The value of a one-output program at one point, as a float."""
    r = jacli.compile(src).eval(point)
    assert r.value.shape == (1,)
    return float(r.value[0])


def values(src, **point):
    return jacli.compile(src).eval(point).value.tolist()


# --- precedence and associativity -------------------------------------------------------

@pytest.mark.parametrize("src, point, expected", [
    ("-x^2", dict(x=3.0), -9.0),
    ("(-x)^2", dict(x=3.0), 9.0),
    ("-x**2", dict(x=3.0), -9.0),
    ("x^-2", dict(x=2.0), 0.25),
    ("x^+2", dict(x=2.0), 4.0),
    ("2^3^2", {}, 512.0),
    ("(2^3)^2", {}, 64.0),
    ("2**3**2", {}, 512.0),
    ("2^3**2", {}, 512.0),
    ("2^-x^2", dict(x=1.5), 2.0 ** -2.25),
    ("e^-u^2", dict(u=0.7), math.exp(-0.49)),
    ("x-y-z", dict(x=10.0, y=3.0, z=2.0), 5.0),
    ("x/y/z", dict(x=24.0, y=3.0, z=2.0), 4.0),
    ("x/y*z", dict(x=24.0, y=3.0, z=2.0), 16.0),
    ("x-y+z", dict(x=10.0, y=3.0, z=2.0), 9.0),
    ("1+2*3", {}, 7.0),
    ("(1+2)*3", {}, 9.0),
    ("2*3^2", {}, 18.0),
    ("-2^2", {}, -4.0),
    ("2*-3", {}, -6.0),
    ("--x", dict(x=1.75), 1.75),
    ("---x", dict(x=1.75), -1.75),
    ("+x", dict(x=1.75), 1.75),
    ("- -b*+a", dict(a=3.0, b=5.0), 15.0),
    ("-a*b", dict(a=3.0, b=5.0), -15.0),
    ("x - -y", dict(x=1.0, y=2.0), 3.0),
    ("2^x^y", dict(x=3.0, y=2.0), 512.0),
])
def test_precedence_and_associativity(src, point, expected):
    assert value(src, **point) == pytest.approx(expected, rel=1e-15)


def test_star_star_is_the_same_as_caret():
    for x, y in [(2.0, 3.0), (1.5, -0.5), (0.3, 2.7)]:
        assert value("x**y", x=x, y=y) == pytest.approx(x ** y, rel=1e-15)
        r1 = jacli.compile("x**y").grad({"x": x, "y": y}).gradient
        r2 = jacli.compile("x^y").grad({"x": x, "y": y}).gradient
        expected = [y * x ** (y - 1), x ** y * math.log(x)]
        np.testing.assert_allclose(r1, expected, rtol=1e-14)
        np.testing.assert_allclose(r2, expected, rtol=1e-14)


def test_precedence_shows_in_derivatives():
    # -x^2 -> -2x ; (-x)^2 -> 2x ; x^-2 -> -2 x^-3 ; 2^-x^2 -> 2^(-x^2) * ln2 * (-2x)
    x = 1.5
    assert jacli.compile("-x^2").grad({"x": x}).gradient[0] == pytest.approx(-2 * x)
    assert jacli.compile("(-x)^2").grad({"x": x}).gradient[0] == pytest.approx(2 * x)
    assert jacli.compile("x^-2").grad({"x": x}).gradient[0] == pytest.approx(-2 * x ** -3)
    assert jacli.compile("2^-x^2").grad({"x": x}).gradient[0] == pytest.approx(
        2 ** (-x * x) * math.log(2) * (-2 * x), rel=1e-14)


# --- numbers and constants -----------------------------------------------------------------

@pytest.mark.parametrize("literal, expected", [
    ("2", 2.0), ("2.", 2.0), (".5", 0.5), ("2.5", 2.5), ("1e-3", 0.001),
    ("6.02E23", 6.02e23), ("15e-1", 1.5), ("0.2e1", 2.0), ("1E+2", 100.0),
    ("007", 7.0), ("1.5e0", 1.5),
])
def test_number_forms(literal, expected):
    assert value(literal) == expected
    assert value(f"{literal}*x", x=2.0) == 2 * expected
    assert jacli.compile(f"{literal}*x").grad({"x": 1.0}).gradient.tolist() == [expected]


def test_no_sign_inside_a_literal():
    # `-2` is unary minus applied to 2: `x-2` is a subtraction, `2^-2` a power of -2.
    assert value("x-2", x=5.0) == 3.0
    assert value("2^-2") == 0.25
    assert value("-2^2") == -4.0


def test_constants():
    assert value("pi") == math.pi
    assert value("e") == math.e
    assert value("2*pi*r", r=0.5) == pytest.approx(math.pi)
    r = jacli.compile("pi*x + e*y").grad({"x": 1.0, "y": 1.0})
    assert r.inputs == ["x", "y"]
    np.testing.assert_allclose(r.gradient, [math.pi, math.e], rtol=1e-15)


# --- statements ----------------------------------------------------------------------------

def test_newlines_and_semicolons_separate_statements():
    p = jacli.compile("a = x + 1\nb = x * 2; c = a*b")
    assert p.outputs == ["a", "b", "c"]
    assert values(p.source, x=3.0) == [4.0, 6.0, 24.0]


def test_comments():
    p = jacli.compile("# a leading comment; with a semicolon\n"
                      "a = x + 1  # trailing comment; b = 99\n"
                      "b = 2*x # another ; one\n")
    assert p.outputs == ["a", "b"]
    assert values(p.source, x=3.0) == [4.0, 6.0]
    assert p.variables == ["x"]


def test_comment_only_line_and_comment_hiding_a_name():
    p = jacli.compile("x # ; y = 3 ; z")
    assert p.outputs == ["f1"]
    assert p.variables == ["x"]


def test_blank_statements_are_ignored():
    p = jacli.compile(";;\n\nx;;\n\n ; \t ;y;\n\n")
    assert p.outputs == ["f1", "f2"]
    assert values(p.source, x=1.0, y=2.0) == [1.0, 2.0]


def test_crlf_line_endings():
    p = jacli.compile("a = x + 1\r\nlet t = 2*x\r\nb = t^2\r\n")
    assert p.outputs == ["a", "b"]
    assert values(p.source, x=3.0) == [4.0, 36.0]


def test_crlf_error_points_at_the_right_line():
    with pytest.raises(JacliError) as info:
        jacli.compile("a = x\r\nb = foo(x)\r\n")
    assert info.value.line_col() == (2, 5)


def test_program_without_final_newline():
    assert values("a = x\nb = x + 1", x=1.0) == [1.0, 2.0]
    assert values("a = x\nb = x + 1\n", x=1.0) == [1.0, 2.0]


def test_let_intermediates_are_not_outputs():
    p = jacli.compile("let s = exp(a) + exp(b)\np = exp(a)/s\nq = exp(b)/s")
    assert p.outputs == ["p", "q"]
    assert p.variables == ["a", "b"]
    a, b = 0.3, -1.2
    s = math.exp(a) + math.exp(b)
    r = p.jacobian({"a": a, "b": b})
    np.testing.assert_allclose(r.value, [math.exp(a) / s, math.exp(b) / s], rtol=1e-14)
    pa, pb = math.exp(a) / s, math.exp(b) / s
    # softmax Jacobian: d p_i / d z_j = p_i (delta_ij - p_j)
    np.testing.assert_allclose(r.jacobian, [[pa * (1 - pa), -pa * pb],
                                            [-pb * pa, pb * (1 - pb)]], rtol=1e-12)


def test_unnamed_outputs_are_named_by_output_position():
    p = jacli.compile("x + 1\nb = x\nlet t = 3\nx*t\nd = 4*x\nx - 1")
    assert p.outputs == ["f1", "b", "f3", "d", "f5"]
    assert values(p.source, x=2.0) == [3.0, 2.0, 6.0, 8.0, 1.0]


def test_inputs_in_order_of_first_appearance():
    p = jacli.compile("let t = z*y\nout = x + t + y + w")
    assert p.variables == ["z", "y", "x", "w"]


def test_names_with_digits_and_underscores():
    p = jacli.compile("_a1 = x_2 * X2 + y__")
    assert p.outputs == ["_a1"]
    assert p.variables == ["x_2", "X2", "y__"]


# --- errors ---------------------------------------------------------------------------------

def error_of(src) -> JacliError:
    with pytest.raises(JacliError) as info:
        jacli.compile(src)
    return info.value


def col(err: JacliError) -> int:
    line, column = err.line_col()
    return column


def test_error_at_end_of_program():
    err = error_of("x^")
    assert "end of program" in err.message
    assert err.line_col() == (1, 3)
    err = error_of("a = x\nb = 1 + x^")
    assert "end of program" in err.message
    assert err.line_col() == (2, 11)
    assert "^" in err.render().splitlines()[-1]


def test_unknown_function_names_it_and_hints():
    err = error_of("foo(x)")
    assert "foo" in err.message
    assert col(err) == 1
    assert err.hint
    from jacli.prims import FUNCTIONS
    assert any(name in err.hint for name in FUNCTIONS)
    err = error_of("y = 1 + sinn(x)")
    assert "sinn" in err.message and col(err) == 9
    assert "sin" in err.hint.replace("sinn", "")
    err = error_of("sqr(x)")
    assert "sqrt" in err.hint


@pytest.mark.parametrize("src, explicit, column", [
    ("2x", "2*x", 2),
    ("y + 3x", "3*x", 6),
    ("x y", "x*y", 3),
    ("2(x+1)", "2*(x+1)", 2),
])
def test_implicit_multiplication_is_rejected_with_a_hint(src, explicit, column):
    err = error_of(src)
    assert err.hint and explicit in err.hint
    assert col(err) == column


def test_wrong_arity_names_the_function():
    err = error_of("atan2(x)")
    assert "atan2" in err.message and "2" in err.message
    assert col(err) == 1
    err = error_of("z = 1 + sin(x, y)")
    assert "sin" in err.message and col(err) == 9


def test_max_with_one_argument_is_the_reduction_and_with_none_an_error():
    # arrays.md changed v1 here: max(a)/min(a) with one argument are the largest /
    # smallest element (amax/amin); with none they are still an error naming them.
    assert [(n.op, n.params) for n in parse("max(x)").nodes] == [("var", ()), ("amax", (None,))]
    assert parse("1 + min(x)").nodes[2].op == "amin"
    err = error_of("1 + min()")
    assert "min" in err.message and col(err) == 5


@pytest.mark.parametrize("name", ["sin", "atan2", "max"])
def test_call_with_no_arguments_names_the_function(name):
    # language.md: "A call with the wrong number of arguments ... is an error that
    # names the function." Zero arguments is a wrong number of arguments.
    err = error_of(f"{name}() + x")
    assert name in err.message
    assert col(err) == 1


def test_name_used_before_it_is_defined():
    err = error_of("y = a + b; a = 1")
    assert "'a'" in err.message
    assert err.span[0] in (4, 11)       # the use, or the late definition
    err = error_of("let t = 2*u\nu = 3\nt")
    assert "'u'" in err.message
    assert err.span is not None


def test_redefining_a_name():
    err = error_of("a = x; a = 2")
    assert "'a'" in err.message and "defined" in err.message
    assert col(err) == 8
    err = error_of("let s = x\nlet s = 2*x\ns")
    assert "'s'" in err.message and err.line_col() == (2, 5)


@pytest.mark.parametrize("src, name, column", [
    ("pi = 1", "pi", 1),
    ("let e = 2\ne", "e", 5),
    ("sin = 1", "sin", 1),
    ("let max = x\nmax", "max", 5),
])
def test_defining_a_constant_or_function(src, name, column):
    err = error_of(src)
    assert f"'{name}'" in err.message
    assert col(err) == column


def test_function_name_used_as_a_value():
    err = error_of("sin + 1")
    assert "sin" in err.message
    assert col(err) == 1


@pytest.mark.parametrize("src, column", [("x $ y", 3), ("x + y ?", 7), ("a = 2 ! x", 7),
                                         ("x + \u00e9", 5)])
def test_unexpected_character(src, column):
    err = error_of(src)
    assert "unexpected character" in err.message
    assert col(err) == column


def test_error_spans_point_into_the_source():
    err = error_of("a = x\n\nb = (x + ")
    assert err.source == "a = x\n\nb = (x + "
    line, column = err.line_col()
    assert line == 3


def test_empty_program_is_an_error():
    for src in ["", "\n", "  # only a comment\n", ";;"]:
        with pytest.raises(JacliError):
            jacli.compile(src)


# --- depth: no recursion limits -------------------------------------------------------------

DEPTH = 10_000


def test_deeply_nested_parentheses():
    src = "(" * DEPTH + "x*x" + ")" * DEPTH
    r = jacli.compile(src).grad({"x": 1.5})
    assert r.value.tolist() == [2.25]
    assert r.gradient.tolist() == [3.0]


def test_deeply_nested_calls():
    src = "sin(" * DEPTH + "x" + ")" * DEPTH
    x0 = 0.5
    v, d = x0, 1.0
    for _ in range(DEPTH):       # chain rule: d sin(v)/dx = cos(v) * dv/dx
        d *= math.cos(v)
        v = math.sin(v)
    p = jacli.compile(src)
    r = p.grad({"x": x0})
    assert r.value[0] == pytest.approx(v, rel=1e-12)
    assert r.gradient[0] == pytest.approx(d, rel=1e-9)
    j = p.jacobian({"x": np.array([x0, -x0])})
    np.testing.assert_allclose(j.jacobian[:, 0, 0], [d, d], rtol=1e-9)


@pytest.mark.parametrize("count", [DEPTH, DEPTH + 1])
def test_deep_unary_minus(count):
    src = "-" * count + "x"
    sign = -1.0 if count % 2 else 1.0
    r = jacli.compile(src).grad({"x": 0.75})
    assert r.value.tolist() == [sign * 0.75]
    assert r.gradient.tolist() == [sign]


def test_deep_right_associative_power():
    # x^1^1^...^1 = x (right associative: x^(1^(1^...))), derivative 1
    src = "x" + "^1" * DEPTH
    r = jacli.compile(src).grad({"x": 1.7})
    assert r.value[0] == pytest.approx(1.7, rel=1e-15)
    assert r.gradient[0] == pytest.approx(1.0, rel=1e-15)


def test_long_sum():
    terms, nvars = 100_000, 5
    names = [f"x{k}" for k in range(nvars)]
    src = " + ".join(f"{i + 1}*{names[i % nvars]}" for i in range(terms))
    p = jacli.compile(src)
    assert p.variables == names
    # Coefficients per variable, summed by hand (exact integers).
    coef = [sum(i + 1 for i in range(k, terms, nvars)) for k in range(nvars)]
    xs = np.array([[1.0, 0.5, -2.0, 0.25, 3.0],
                   [0.0, 1.0, 0.0, -1.0, 0.5]])
    point = {name: xs[:, k] for k, name in enumerate(names)}
    r = p.jacobian(point)
    assert r.jacobian.shape == (2, 1, nvars)
    np.testing.assert_array_equal(r.jacobian[:, 0, :], [coef, coef])
    expected = [sum(c * x for c, x in zip(coef, row)) for row in xs]
    np.testing.assert_allclose(r.value[:, 0], expected, rtol=1e-12)


def test_parse_returns_a_tape_whose_outputs_are_named():
    tape = parse("r = sqrt(x^2 + y^2)\natan2(y, x)")
    assert tape.outputs == ["r", "f2"]
    assert tape.variables == ["x", "y"]
    assert len(tape.output_nodes) == 2


class _BracketNewlines:
    """Lark postlexer for the reference parsers: a line break inside ( ) or [ ] continues
    the statement (arrays.md), which Lark's basic lexer alone cannot know."""
    always_accept = ()

    def process(self, stream):
        depth = 0
        for token in stream:
            if token.type in ("LPAR", "LSQB"):
                depth += 1
            elif token.type in ("RPAR", "RSQB"):
                depth = max(0, depth - 1)
            elif token.type == "_SEP" and depth and token == "\n":
                continue
            yield token


def test_the_regex_lexer_agrees_with_larks_lexer_on_the_grammar():
    """parse.tokens scans with one regular expression for speed; Lark's own lexer, built
    from grammar/jacli.lark, is the reference for what the tokens are."""
    import json
    from importlib import resources

    from lark import Lark

    from jacli.parse import tokens

    grammar = resources.files("jacli.grammar").joinpath("jacli.lark").read_text()
    reference = Lark(grammar, start="program", parser="lalr", lexer="basic",
                     postlex=_BracketNewlines())
    corpus = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "cases.jsonl"
    programs = [json.loads(line)["program"] for line in corpus.open()] if corpus.exists() else []
    programs += [p.read_text() for p in (Path(__file__).resolve().parents[1] / "samples").glob("*.jac")]
    programs += ["let s = x**2 ^ 3; y = .5e-3*s # comment; not a statement\n\tz = 2.*s\r\n",
                 "letter + let_x + _a1 - 1E+5/(3)", "a,b"]
    for program in programs:
        ours = [(t.type, str(t), t.start_pos, t.end_pos) for t in tokens(program)]
        theirs = [(t.type, str(t), t.start_pos, t.end_pos)
                  for t in _BracketNewlines().process(reference.lex(program))]
        assert ours == theirs, program


def test_the_kept_lalr_tables_are_the_ones_lark_computes_from_the_grammar():
    """grammar/jacli_lalr.py must be rewritten (`python -m jacli.parse`) whenever
    grammar/jacli.lark changes; this fails when it was not."""
    from jacli.grammar import jacli_lalr as kept
    from jacli.parse import tables_from_grammar

    grammar = (Path(__file__).resolve().parents[1] / "grammar" / "jacli.lark").read_text()
    assert kept.GRAMMAR == grammar
    fresh = tables_from_grammar(grammar)
    assert (kept.START, kept.END, kept.RULES, kept.ACTIONS) == tuple(fresh)


def test_stale_kept_tables_are_made_again_from_the_grammar(monkeypatch):
    import jacli.parse
    from jacli.grammar import jacli_lalr as kept

    monkeypatch.setattr(kept, "GRAMMAR", "// an older grammar")
    monkeypatch.setattr(kept, "ACTIONS", ())   # unusable: parsing must not touch them
    monkeypatch.setattr(jacli.parse, "_tables", None)
    tape = parse("r = sqrt(x^2 + y^2)\nmax(x, y, 1)")
    assert tape.outputs == ["r", "f2"]


def test_the_shift_reduce_loop_accepts_exactly_what_larks_parser_accepts():
    """Lark's own LALR parser on the same grammar is the reference: a program is a syntax
    error for jacli exactly when Lark rejects it, at the same token."""
    import random

    from lark import Lark
    from lark.exceptions import UnexpectedCharacters, UnexpectedToken

    from fuzz import program

    grammar = (Path(__file__).resolve().parents[1] / "grammar" / "jacli.lark").read_text()
    reference = Lark(grammar, start="program", parser="lalr", lexer="basic",
                     postlex=_BracketNewlines())
    rng = random.Random(2026)
    syntax_errors = 0
    for _ in range(3000):
        text = program(rng)
        try:
            reference.parse(text)
            lark_error = None
        except UnexpectedCharacters as error:
            lark_error = error.pos_in_stream
        except UnexpectedToken as error:
            lark_error = error.token.start_pos if error.token.type != "$END" else "end"
        try:
            parse(text)
            ours = None
        except JacliError as error:
            ours = error.message
            start = error.span[0] if error.span else None
        if lark_error is None:   # only a name or arity error can remain
            assert ours is None or not ours.startswith(("unexpected", "implicit")), text
        else:
            syntax_errors += 1
            assert ours is not None, text
            if lark_error != "end" and ours.startswith(("unexpected '", "implicit",
                                                        "unexpected character")):
                assert start == lark_error, (text, ours)
    assert syntax_errors > 300   # the damaged programs did reach the error paths

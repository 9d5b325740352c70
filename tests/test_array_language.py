"""The array language of shared/spec/arrays.md, the parser's side: literals, indexing and
slices, `@`, `axis=k`, line breaks inside brackets (the nodes and params the parser emits,
as the interface of notes/ARRAYS.md fixes them), and the shape pass (jacli/shapes.py):
every shape error of arrays.md with its message and caret. The shape rules are checked
against NumPy itself; the corpus (shared/corpus/arrays.jsonl) against its expected shapes."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from jacli.errors import JacliError, ShapeError
from jacli.parse import AXIS_FUNCTIONS, FUNCTIONS, parse
from jacli.shapes import (SHAPE_RULES, broadcast, infer_shapes, node_shape,
                          require_scalar_output)
from jacli.tape import Node

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "arrays.jsonl"


def ops(source: str) -> list[tuple]:
    """The program's nodes other than variables and constants: (op, args, params)."""
    return [(n.op, n.args, n.params) for n in parse(source).nodes if n.op not in ("var", "const")]


def error_of(source: str, **shapes) -> JacliError:
    """The error of parsing `source` (or of its shape pass, with `shapes`)."""
    with pytest.raises(JacliError) as info:
        infer_shapes(parse(source), shapes)
    return info.value


def caret(error: JacliError) -> str:
    """The source text under the caret."""
    return error.source[error.span[0]:error.span[1]]


def shape_of(source: str, **shapes) -> tuple:
    """The shape of the program's last output."""
    tape = parse(source)
    return infer_shapes(tape, shapes)[tape.output_nodes[-1]]


# --- syntax -> nodes ------------------------------------------------------------------

@pytest.mark.parametrize("source, expected", [
    # x is node 0; nodes made by the parser follow in order
    ("x[1]", [("index", (0,), ((1,),))]),
    ("x[-1]", [("index", (0,), ((-1,),))]),
    ("A[1, -2]", [("index", (0,), ((1, -2),))]),
    ("A[1][2]", [("index", (0,), ((1,),)), ("index", (1,), ((2,),))]),
    ("a[1:3]", [("index", (0,), (((1, 3, None),),))]),
    ("a[1:]", [("index", (0,), (((1, None, None),),))]),
    ("a[:2]", [("index", (0,), (((None, 2, None),),))]),
    ("a[:-1]", [("index", (0,), (((None, -1, None),),))]),
    ("a[::2]", [("index", (0,), (((None, None, 2),),))]),
    ("a[1::2]", [("index", (0,), (((1, None, 2),),))]),
    ("a[::-1]", [("index", (0,), (((None, None, -1),),))]),
    ("a[:]", [("index", (0,), (((None, None, None),),))]),
    ("a[0:4:1]", [("index", (0,), (((0, 4, 1),),))]),
    ("A[:, 0]", [("index", (0,), (((None, None, None), 0),))]),
    ("A[1:, ::-1]", [("index", (0,), (((1, None, None), (None, None, -1)),))]),
    ("A @ x", [("matmul", (0, 1), ())]),
    ("sum(x)", [("sum", (0,), (None,))]),
    ("sum(x, axis=1)", [("sum", (0,), (1,))]),
    ("mean(x, axis=-1)", [("mean", (0,), (-1,))]),
    ("prod(x, axis = 0)", [("prod", (0,), (0,))]),
    ("norm(x)", [("norm", (0,), (None,))]),
    ("logsumexp(x, axis=0)", [("logsumexp", (0,), (0,))]),
    ("softmax(x)", [("softmax", (0,), (-1,))]),
    ("softmax(x, axis=0)", [("softmax", (0,), (0,))]),
    ("max(x)", [("amax", (0,), (None,))]),
    ("min(x, axis=1)", [("amin", (0,), (1,))]),
    ("max(x, y)", [("max", (0, 1), ())]),
    ("min(x, y, x)", [("min", (0, 1, 0), ())]),
    ("dot(x, y)", [("dot", (0, 1), ())]),
    ("outer(x, y)", [("outer", (0, 1), ())]),
    ("solve(A, b)", [("solve", (0, 1), ())]),
    ("transpose(A) + diag(A) + trace(A) + det(A) + inv(A)",
     [("transpose", (0,), ()), ("diag", (0,), ()), ("add", (1, 2), ()), ("trace", (0,), ()),
      ("add", (3, 4), ()), ("det", (0,), ()), ("add", (5, 6), ()), ("inv", (0,), ()),
      ("add", (7, 8), ())]),
])
def test_each_form_parses_to_its_nodes_and_params(source, expected):
    assert ops(source) == expected


def test_a_literal_stacks_its_elements_and_nested_literals_stack_stacks():
    tape = parse("[x, 2, x*y]")
    x, two, y, product, literal = tape.nodes
    assert (x.name, two.value, y.name) == ("x", 2.0, "y")
    assert (product.op, product.args) == ("mul", (0, 2))
    assert (literal.op, literal.args, literal.params, literal.span) == ("stack", (0, 1, 3), (), (0, 11))
    nodes = parse("[[1, 2], [3, 4]]").nodes
    assert [n.value for n in nodes if n.op == "const"] == [1.0, 2.0, 3.0, 4.0]
    assert [(n.op, n.args) for n in nodes if n.op != "const"] == [
        ("stack", (0, 1)), ("stack", (3, 4)), ("stack", (2, 5))]


def test_indexing_applies_to_any_primary():
    assert ops("(A @ x)[1:]") == [("matmul", (0, 1), ()), ("index", (2,), (((1, None, None),),))]
    assert ops("softmax(x)[-1]") == [("softmax", (0,), (-1,)), ("index", (1,), ((-1,),))]
    assert ops("[x, y][0]") == [("stack", (0, 1), ()), ("index", (2,), ((0,),))]


def test_subscripts_share_nodes_like_everything_else():
    # x[0] twice is one node (hash-consing with params in the key); x[0], x[1] are two
    assert ops("x[0] * x[0] + x[1]") == [("index", (0,), ((0,),)), ("mul", (1, 1), ()),
                                          ("index", (0,), ((1,),)), ("add", (2, 3), ())]


# --- precedence ---------------------------------------------------------------------------

def test_indexing_binds_tighter_than_power_and_unary_minus():
    # -x[1]^2 is -((x[1])^2)
    tape = parse("-x[1]^2")
    assert [(n.op, n.args) for n in tape.nodes] == [
        ("var", ()), ("index", (0,)), ("const", ()), ("pow", (1, 2)), ("neg", (3,))]
    assert ops("2^x[1]") == [("index", (1,), ((1,),)), ("pow", (0, 2), ())]


@pytest.mark.parametrize("source, expected", [
    ("A @ x + b", [("matmul", (0, 1), ()), ("add", (2, 3), ())]),          # (A @ x) + b
    ("b + A @ x", [("matmul", (1, 2), ()), ("add", (0, 3), ())]),
    ("x @ y @ z", [("matmul", (0, 1), ()), ("matmul", (2, 3), ())]),       # left associative
    ("x * y @ z", [("mul", (0, 1), ()), ("matmul", (2, 3), ())]),          # like * and /
    ("x @ y * z", [("matmul", (0, 1), ()), ("mul", (2, 3), ())]),
    ("x @ y ^ 2", [("pow", (1, 2), ()), ("matmul", (0, 3), ())]),          # ^ binds tighter
    ("-x @ y", [("neg", (0,), ()), ("matmul", (1, 2), ())]),
])
def test_matmul_binds_like_times_and_is_left_associative(source, expected):
    assert ops(source) == expected


# --- line breaks inside brackets ----------------------------------------------------------

def test_a_line_break_inside_brackets_continues_the_statement():
    multi = parse("W = [\n  [1, 2],   # first row\n  [3, 4]\n]\ny = sum(W,\n  axis=0)\n")
    assert multi.outputs == ["W", "y"]
    assert [(n.op, n.params) for n in multi.nodes if n.op != "const"][-1] == ("sum", (0,))
    assert ops("f(\n)".replace("f", "sin").replace("(\n)", "(x\n)")) == [("sin", (0,), ())]
    assert ops("(x\n + 1)") == ops("(x + 1)")
    assert ops("x[1,\n 2]") == ops("x[1, 2]")
    assert ops("(x\r\n+ 1)") == ops("x + 1")


def test_a_line_break_outside_brackets_still_ends_the_statement():
    assert parse("a = [1, 2]\nb = (x)\nc = x").outputs == ["a", "b", "c"]
    with pytest.raises(JacliError, match="unexpected"):
        parse("[1, 2; 3]")   # a ';' inside brackets is no line break


def test_an_unclosed_bracket_before_a_line_break_is_named_in_the_hint():
    err = error_of("y = sin(x\nz = 2")
    assert err.message.startswith("unexpected 'z'") and err.line_col() == (2, 1)
    assert err.hint == ("the '(' at line 1, column 8 is not closed, so the statement went on "
                        "past the line break: is a ')' missing?")
    err = error_of("W = [[1, 2],\n  [3, 4]\n")
    assert err.message.startswith("unexpected end of program: expected")
    assert "the '[' at line 1, column 5 is not closed" in err.hint


# --- syntax errors ------------------------------------------------------------------------

@pytest.mark.parametrize("source, message, under", [
    ("y = []", "an array literal needs at least one element: [] has no shape", "[]"),
    ("x[1.5]", "an index, a slice bound or an axis is an integer, not '1.5'", "1.5"),
    ("x[1e3]", "an index, a slice bound or an axis is an integer, not '1e3'", "1e3"),
    ("x[-2.]", "an index, a slice bound or an axis is an integer, not '2.'", "-2."),
    ("x[::0]", "a slice step cannot be zero", "0"),
    ("sum(x, axis=0.5)", "an index, a slice bound or an axis is an integer, not '0.5'", "0.5"),
    ("sin(x, axis=0)", "sin() takes no axis=", "axis=0"),
    ("dot(x, y, axis=0)", "dot() takes no axis=", "axis=0"),
    ("max(x, y, axis=0)",
     "axis= is only accepted by max() with one argument: with 2 it is elementwise", "axis=0"),
    ("sum(x, foo=1)", "unknown keyword argument 'foo': the one keyword argument is axis=k",
     "foo=1"),
    ("sum(axis=0, x)", "axis= comes after the positional arguments", "axis=0"),
    ("sum(x, axis=0, axis=1)", "axis= is given twice", "axis=1"),
    ("1 + dot(x)", "dot() takes 2 arguments, got 1", "dot(x)"),
    ("sum(x, y)", "sum() takes 1 argument, got 2", "sum(x, y)"),
    ("solve(A)", "solve() takes 2 arguments, got 1", "solve(A)"),
    ("max()", "max() takes 1 or more arguments, got 0", "max()"),
    ("sum(axis=0)", "sum() takes 1 argument, got 0", "sum(axis=0)"),
])
def test_syntax_errors_of_the_new_forms_have_a_message_and_a_caret(source, message, under):
    err = error_of(source)
    assert err.message == message
    assert caret(err) == under


def test_a_subscript_that_is_not_an_integer_literal_gets_a_hint():
    err = error_of("x[i]")
    assert err.message == "unexpected 'i': expected a number, '-' or ':'" and caret(err) == "i"
    assert err.hint.startswith("indices, slice bounds and steps are integer literals")
    err = error_of("sum(x, axis=k)")
    assert caret(err) == "k" and "axis=k, k an integer literal" in err.hint


def test_what_is_expected_inside_a_literal_or_subscript_names_the_right_bracket():
    assert error_of("[1, 2").message == "unexpected end of program: expected ']' or ','"
    assert error_of("x[1").message == "unexpected end of program: expected ']', ':' or ','"
    assert error_of("sin(x").message == "unexpected end of program: expected ')' or ','"
    assert error_of("sin([x)").message == "unexpected ')': expected ']' or ','"


@pytest.mark.parametrize("source, explicit", [
    ("x[0] y", "x[0]*y"), ("y x[0]", "y*x[0]"), ("x[0] y[1]", "x[0]*y[1]"),
    ("[1, 2] x", "[1, 2]*x"), ("A[0][1] sin(x)", "A[0][1]*sin(x)"),
    ("sum(x)[0] 2", "sum(x)[0]*2"), ("1 + [[1], [2]][0] x", "[[1], [2]][0]*x"),
])
def test_implicit_multiplication_next_to_a_subscript_or_literal_gets_its_hint(source, explicit):
    err = error_of(source)
    assert err.message == "implicit multiplication is not accepted"
    assert err.hint == f"write {explicit}"


def test_a_closed_bracket_is_not_listed_as_expected_after_it():
    # as after a closed parenthesis: `(x) ,`
    expected = "unexpected ',': expected a new line or ';' or the end of the program"
    assert error_of("(x) ,").message == expected
    assert error_of("x[0] ,").message == expected
    assert error_of("sin([x[0] y").message == "implicit multiplication is not accepted"


def test_the_syntax_ops_are_not_callable_by_name():
    for name in ("stack", "index", "amax", "amin", "matmul"):
        assert name not in FUNCTIONS
        assert error_of(f"{name}(x)").message == f"unknown function '{name}'"


def test_the_array_functions_are_in_the_table_with_their_arity():
    expected = {"sum": 1, "mean": 1, "prod": 1, "norm": 1, "logsumexp": 1, "softmax": 1,
                "dot": 2, "outer": 2, "transpose": 1, "diag": 1, "trace": 1, "det": 1,
                "inv": 1, "solve": 2}
    assert {name: FUNCTIONS[name] for name in expected} == expected
    assert set(AXIS_FUNCTIONS) == {"sum", "mean", "prod", "max", "min", "norm", "logsumexp",
                                   "softmax"}


@pytest.mark.parametrize("source, hint", [
    ("matmul(A, x + 1)", "did you mean A @ (x + 1)?"), ("mm(W, h)", "did you mean W @ h?"),
    ("stack(x, y)", "did you mean [x, y]?"), ("array([1, 2])", "did you mean [1, 2]?"),
    ("inverse(A)", "did you mean inv(A)?"), ("tr(A)", "did you mean trace(A)?"),
    ("amax(x)", "did you mean max(x)?"), ("Sum(x)", "did you mean sum(x)?"),
])
def test_other_libraries_names_of_array_functions_get_jaclis_form(source, hint):
    err = error_of(source)
    assert err.message.startswith("unknown function") and err.hint == hint


def test_the_new_function_names_stay_free_as_names_in_v1_programs():
    # a v1 program naming a variable or a value `mean`, `sum`, `norm`, ... still parses;
    # a call still calls; v1's own function names are still reserved
    tape = parse("mean = (a + b)/2\nlet norm = mean^2; norm + trace")
    assert tape.outputs == ["mean", "f2"] and tape.variables == ["a", "b", "trace"]
    assert ops("let sum = x; sum + sum(x)") == [("sum", (0,), (None,)), ("add", (0, 1), ())]
    assert error_of("sin = 2").message == "'sin' is a function and cannot be defined"
    assert error_of("max + 1").message == "'max' is a function: call it as max(...)"


def test_the_characters_hints_still_work_now_that_brackets_are_tokens():
    err = error_of("x \u00d7 y")
    assert err.message == "unexpected character '\u00d7'" and "write * for" in err.hint
    assert error_of("x $ y").message == "unexpected character '$'"
    assert error_of("sqr(x)").hint == "did you mean x^2 (or sqrt(x))?"


# --- v1 programs are unchanged ------------------------------------------------------------

def test_v1_programs_parse_to_the_same_tapes_as_before():
    # hand-written expectations: every field of every node
    tape = parse("r = sqrt(x^2 + y^2)\nmax(x, y, 1)")
    assert tape.nodes == [
        Node("var", (), (9, 10), name="x"), Node("const", (), (11, 12), value=2.0),
        Node("pow", (0, 1), (9, 12)), Node("var", (), (15, 16), name="y"),
        Node("pow", (3, 1), (15, 18)), Node("add", (2, 4), (9, 18)),
        Node("sqrt", (5,), (4, 19)), Node("const", (), (30, 31), value=1.0),
        Node("max", (0, 3, 7), (20, 32)),
    ]
    assert (tape.outputs, tape.output_nodes) == (["r", "f2"], [6, 8])
    assert parse("let a = -x^2; a * (a - 1)").nodes == [
        Node("var", (), (9, 10), name="x"), Node("const", (), (11, 12), value=2.0),
        Node("pow", (0, 1), (9, 12)), Node("neg", (2,), (8, 12)),
        Node("const", (), (23, 24), value=1.0), Node("sub", (3, 4), (19, 24)),
        Node("mul", (3, 5), (14, 25)),
    ]


def test_the_shape_pass_of_a_scalar_program_is_all_scalars():
    tape = parse("r = sqrt(x^2 + y^2)\nmax(x, y, 1) + atan2(y, x)")
    assert infer_shapes(tape, {}) == [()] * len(tape.nodes)


# --- shape errors (arrays.md), with message and caret ------------------------------------

def test_matmul_of_mismatched_shapes_is_the_error_of_arrays_md():
    err = error_of("y = W @ x", W=(2, 3), x=(2,))
    assert err.render().splitlines() == [
        "error: program:1:7: matmul of shapes (2, 3) and (2,): inner dimensions 3 and 2 differ",
        "  y = W @ x",
        "        ^"]


@pytest.mark.parametrize("source, shapes, message, under", [
    ("x + y", dict(x=(2,), y=(3,)), "+ of shapes (2,) and (3,): cannot broadcast", "+"),
    ("a = 1 + x * W", dict(x=(2,), W=(2, 3)), "* of shapes (2,) and (2, 3): cannot broadcast",
     "*"),
    ("atan2(x, y)", dict(x=(2,), y=(3,)), "atan2 of shapes (2,) and (3,): cannot broadcast",
     "atan2(x, y)"),
    ("max(x, y, 1)", dict(x=(2,), y=(3,)),
     "max of shapes (2,), (3,) and (): cannot broadcast", "max(x, y, 1)"),
    ("x @ y", dict(x=(2,), y=(3,)), "matmul of shapes (2,) and (3,): inner dimensions 2 and 3 "
     "differ", "@"),
    ("(A @ B) @ x", dict(A=(2, 3), B=(3, 4), x=(3,)),
     "matmul of shapes (2, 4) and (3,): inner dimensions 4 and 3 differ", "@"),
    ("x @ 2", dict(x=(2,)), "matmul of shapes (2,) and (): a scalar has no matrix product "
     "(use * to scale)", "@"),
    ("x[3]", dict(x=(3,)), "index 3 is out of range for axis 0 of shape (3,) (size 3)", "3"),
    ("x[-4]", dict(x=(3,)), "index -4 is out of range for axis 0 of shape (3,) (size 3)", "-4"),
    ("A[0, 5]", dict(A=(2, 3)), "index 5 is out of range for axis 1 of shape (2, 3) (size 3)",
     "5"),
    ("A[0][5]", dict(A=(2, 3)), "index 5 is out of range for axis 0 of shape (3,) (size 3)",
     "5"),
    ("A[:, -9]", dict(A=(2, 3)), "index -9 is out of range for axis 1 of shape (2, 3) "
     "(size 3)", "-9"),
    ("x[0, 1]", dict(x=(3,)), "index of shape (3,): 2 subscripts for 1 axis", "1"),
    ("x[0]", {}, "index of shape (): 1 subscripts for 0 axes", "0"),
    ("[x, y]", dict(y=(2,)), "array literal with elements of shapes () and (2,): element 1 "
     "differs from element 0 (a literal is not ragged)", "y"),
    ("[[1, 2], [3, 4, 5]]", {}, "array literal with elements of shapes (2,) and (3,): "
     "element 1 differs from element 0 (a literal is not ragged)", "[3, 4, 5]"),
    ("[x, x, y * 2]", dict(x=(2,), y=(3,)), "array literal with elements of shapes (2,) "
     "and (3,): element 2 differs from element 0 (a literal is not ragged)", "y * 2"),
    ("sum(x, axis=1)", dict(x=(3,)), "sum of shape (3,): axis 1 is out of range for rank 1",
     "axis=1"),
    ("mean(A, axis=-3)", dict(A=(2, 3)),
     "mean of shape (2, 3): axis -3 is out of range for rank 2", "axis=-3"),
    ("1 + max(x, axis=2)", dict(x=(2, 2)),
     "max of shape (2, 2): axis 2 is out of range for rank 2", "axis=2"),
    ("softmax(x, axis=1)", dict(x=(4,)),
     "softmax of shape (4,): axis 1 is out of range for rank 1", "axis=1"),
    ("det(A)", dict(A=(2, 3)), "det of shape (2, 3): the matrix is not square (2 x 3)",
     "det(A)"),
    ("inv(A)", dict(A=(3, 2)), "inv of shape (3, 2): the matrix is not square (3 x 2)",
     "inv(A)"),
    ("det(v)", dict(v=(3,)), "det of shape (3,): det takes a square matrix", "det(v)"),
    ("solve(A, b)", dict(A=(2, 3), b=(2,)),
     "solve of shapes (2, 3) and (2,): the first argument is not a square matrix",
     "solve(A, b)"),
    ("solve(A, b)", dict(A=(2, 2), b=(3,)),
     "solve of shapes (2, 2) and (3,): the matrix has 2 rows and the right-hand side 3",
     "solve(A, b)"),
    ("dot(x, y)", dict(x=(2,), y=(3,)), "dot of shapes (2,) and (3,): lengths 2 and 3 differ",
     "dot(x, y)"),
    ("trace(x)", dict(x=(3,)), "trace of shape (3,): trace takes a matrix", "trace(x)"),
    # every operator broadcasts (and names itself), and a function of two arguments
    ("x - y", dict(x=(2,), y=(3,)), "- of shapes (2,) and (3,): cannot broadcast", "-"),
    ("x / W", dict(x=(2,), W=(2, 3)), "/ of shapes (2,) and (2, 3): cannot broadcast", "/"),
    ("x ^ y", dict(x=(2,), y=(3,)), "^ of shapes (2,) and (3,): cannot broadcast", "^"),
    ("hypot(c, r)", dict(c=(2, 1), r=(3, 2)),
     "hypot of shapes (2, 1) and (3, 2): cannot broadcast", "hypot(c, r)"),
    ("A @ B", dict(A=(2, 2, 3), B=(3, 3, 2)), "matmul of shapes (2, 2, 3) and (3, 3, 2): batch "
     "dimensions of shapes (2,) and (3,): cannot broadcast", "@"),
    ("sum(x)[0]", dict(x=(2,)), "index of shape (): 1 subscripts for 0 axes", "0"),
    ("s = [x, [1, 2]]", dict(x=(3,)), "array literal with elements of shapes (3,) and (2,): "
     "element 1 differs from element 0 (a literal is not ragged)", "[1, 2]"),
    ("prod(x, axis=-2)", dict(x=(2,)), "prod of shape (2,): axis -2 is out of range for rank 1",
     "axis=-2"),
    ("norm(x, axis=2)", dict(x=(1, 2)), "norm of shape (1, 2): axis 2 is out of range for "
     "rank 2", "axis=2"),
    ("logsumexp(x, axis=1)", dict(x=(2,)),
     "logsumexp of shape (2,): axis 1 is out of range for rank 1", "axis=1"),
    ("min(x, axis=-3)", dict(x=(1, 2)), "min of shape (1, 2): axis -3 is out of range for "
     "rank 2", "axis=-3"),
    ("det(A)", dict(A=(1, 3)), "det of shape (1, 3): the matrix is not square (1 x 3)",
     "det(A)"),
    ("det(A)", dict(A=(2, 3, 2)), "det of shape (2, 3, 2): the matrix is not square (3 x 2)",
     "det(A)"),
    ("inv(v)", dict(v=(2,)), "inv of shape (2,): inv takes a square matrix", "inv(v)"),
    ("1 + inv(s)", {}, "inv of shape (): inv takes a square matrix", "inv(s)"),
    ("solve(A, B)", dict(A=(2, 2), B=(3, 2)),
     "solve of shapes (2, 2) and (3, 2): the matrix has 2 rows and the right-hand side 3",
     "solve(A, B)"),
    ("solve(A, b)", dict(A=(2, 2)), "solve of shapes (2, 2) and (): the right-hand side is a "
     "scalar, not a vector or a matrix", "solve(A, b)"),
    ("solve(v, v)", dict(v=(2,)),
     "solve of shapes (2,) and (2,): the first argument is not a square matrix", "solve(v, v)"),
    ("dot(A, x)", dict(A=(2, 2), x=(2,)), "dot of shapes (2, 2) and (2,): dot takes two vectors "
     "(use @ for matrices)", "dot(A, x)"),
    ("outer(A, x)", dict(A=(2, 2), x=(2,)), "outer of shapes (2, 2) and (2,): outer takes two "
     "vectors", "outer(A, x)"),
    ("diag(A)", dict(A=(1, 1, 1)), "diag of shape (1, 1, 1): diag takes a vector or a matrix",
     "diag(A)"),
    # an empty slice has no largest element (NumPy refuses too; was an internal error)
    ("max(x[5:])", dict(x=(3,)), "max of shape (0,): no elements to take the largest of",
     "max(x[5:])"),
    ("sum(min(A[2:], axis=0))", dict(A=(2, 2)),
     "min of shape (0, 2): axis 0 has no elements to take the smallest of", "axis=0"),
])
def test_every_shape_error_has_its_message_and_caret(source, shapes, message, under):
    err = error_of(source, **shapes)
    assert err.message == message
    assert caret(err) == under


def test_an_empty_slice_is_valid_where_numpy_takes_it():
    assert shape_of("x[5:]", x=(3,)) == (0,) and shape_of("sum(x[3:])", x=(3,)) == ()
    assert shape_of("max(A[2:], axis=1)", A=(2, 2)) == (0,)   # nothing to reduce: empty


def test_a_shape_error_on_a_later_line_points_there():
    err = error_of("let h = tanh(W @ x + b)\nloss = sum((V @ h - y)^2)",
                   W=(3, 2), x=(2,), b=(3,), V=(2, 4), y=(2,))
    assert err.render().splitlines()[:3] == [
        "error: program:2:15: matmul of shapes (2, 4) and (3,): inner dimensions 4 and 3 differ",
        "  loss = sum((V @ h - y)^2)",
        "                ^"]


def test_grad_of_a_non_scalar_output_names_its_shape_and_suggests_sum_or_jac():
    tape = parse("s = sum(x^2)\ny = W @ x")
    shapes = infer_shapes(tape, {"W": (2, 3), "x": (3,)})
    require_scalar_output(tape, shapes, "s", "grad")   # one element: fine
    with pytest.raises(JacliError) as info:
        require_scalar_output(tape, shapes, "y", "hess")
    err = info.value
    assert err.message == "hess needs an output with one element, but 'y' has shape (2,)"
    assert caret(err) == "y = W @ x"
    assert err.hint == ("take sum(...) of it for a scalar, or use jac for the Jacobian of all "
                        "its 2 components")
    one = parse("x[0:1]")
    require_scalar_output(one, infer_shapes(one, {"x": (3,)}), "f1", "grad")   # shape (1,)


# --- the shape rules, against NumPy itself ----------------------------------------------

SHAPES = [(), (1,), (2,), (3,), (2, 1), (1, 3), (2, 3), (3, 2), (3, 3), (2, 2, 3), (2, 3, 3),
          (1, 3, 2)]


def numpy_shape(function, *shapes):
    """The shape NumPy gives, or None where NumPy refuses."""
    rng = np.random.default_rng(0)   # random entries: no singular matrix
    try:
        with np.errstate(all="ignore"):
            return np.shape(function(*[rng.standard_normal(s) for s in shapes]))
    except (ValueError, IndexError, np.linalg.LinAlgError, TypeError):
        return None


def rule_shape(rule, shapes, params=()):
    try:
        return rule(list(shapes), params)
    except ShapeError:
        return None


def test_broadcasting_is_numpys():
    for a, b in itertools.product(SHAPES, repeat=2):
        assert rule_shape(lambda s, p: broadcast(s, "+"), (a, b)) == \
            numpy_shape(np.add, a, b), (a, b)


def test_matmul_is_numpys_matmul():
    for a, b in itertools.product(SHAPES, repeat=2):
        assert rule_shape(SHAPE_RULES["matmul"], (a, b)) == numpy_shape(np.matmul, a, b), (a, b)


@pytest.mark.parametrize("op, function", [
    ("sum", np.sum), ("mean", np.mean), ("prod", np.prod), ("amax", np.max), ("amin", np.min),
    ("norm", lambda a, axis: np.sqrt(np.sum(a * a, axis=axis))),
    ("logsumexp", lambda a, axis: np.log(np.sum(np.exp(a), axis=axis))),
    ("softmax", lambda a, axis: np.exp(a) / np.sum(np.exp(a), axis=axis, keepdims=True)),
])
def test_reductions_and_softmax_take_numpys_axes(op, function):
    for shape in SHAPES:
        for axis in [None, -3, -2, -1, 0, 1, 2, 3]:
            if op == "softmax" and axis is None:
                continue
            if op == "mean" and shape == () and axis in (0, -1):
                continue   # NumPy's mean alone refuses the axis of a scalar its sum takes
            assert rule_shape(SHAPE_RULES[op], (shape,), (axis,)) == \
                numpy_shape(lambda a: function(a, axis=axis), shape), (shape, axis)
    assert SHAPE_RULES["softmax"]([()], (-1,)) == ()   # a scalar: softmax(3) is 1


def test_index_is_numpys_basic_indexing():
    items = [0, 1, -1, 2, -3, 3, (None, None, None), (1, None, None), (None, -1, None),
             (None, None, -1), (None, None, 2), (5, None, None), (-10, 10, 3)]
    for shape in [(3,), (2, 3), (3, 1), (2, 2, 3)]:
        for count in (1, 2):
            for spec in itertools.product(items, repeat=count):
                numpy_spec = tuple(slice(*i) if type(i) is tuple else i for i in spec)
                assert rule_shape(SHAPE_RULES["index"], (shape,), (spec,)) == \
                    numpy_shape(lambda a: a[numpy_spec], shape), (shape, spec)


def _only_ranks(function, ranks):
    """`function`, refusing (as jacli does) the ranks NumPy would also take."""
    def refusing(a):
        if a.ndim not in ranks:
            raise ValueError
        return function(a)
    return refusing


@pytest.mark.parametrize("op, function", [
    ("transpose", np.transpose), ("det", np.linalg.det), ("inv", np.linalg.inv),
    ("trace", _only_ranks(np.trace, (2,))), ("diag", _only_ranks(np.diag, (1, 2))),
])
def test_linear_algebra_of_one_argument_is_numpys(op, function):
    for shape in SHAPES:
        assert rule_shape(SHAPE_RULES[op], (shape,)) == numpy_shape(function, shape), shape


def test_solve_dot_and_outer_are_numpys():
    def np_dot(a, b):
        if a.ndim and b.ndim and (a.ndim > 1 or b.ndim > 1):
            raise ValueError   # jacli's dot takes vectors (a scalar scales, as in NumPy)
        return np.dot(a, b)

    def np_outer(a, b):
        if a.ndim > 1 or b.ndim > 1:
            raise ValueError   # jacli's outer takes vectors (and scalars)
        return np.outer(a, b)

    for a, b in itertools.product(SHAPES, repeat=2):
        assert rule_shape(SHAPE_RULES["solve"], (a, b)) == \
            numpy_shape(np.linalg.solve, a, b), (a, b)
        assert rule_shape(SHAPE_RULES["dot"], (a, b)) == numpy_shape(np_dot, a, b), (a, b)
        assert rule_shape(SHAPE_RULES["outer"], (a, b)) == numpy_shape(np_outer, a, b), (a, b)


def test_one_node_gets_the_shape_the_pass_gives_it():
    tape = parse("s = sum(W @ x + b, axis=0) * y; z = [x, x][1, ::-1]")
    given = {"W": (2, 3), "x": (3,), "b": (2,), "y": (4, 1)}
    shapes = infer_shapes(tape, given)
    for node, shape in zip(tape.nodes, shapes):
        if node.op not in ("var", "const"):
            assert node_shape(node.op, [shapes[a] for a in node.args], node.params) == shape
    assert shapes[tape.output_nodes[0]] == (4, 1) and shapes[tape.output_nodes[1]] == (3,)
    with pytest.raises(ShapeError, match=r"^\+ of shapes \(2,\) and \(3,\): cannot broadcast$"):
        node_shape("add", [(2,), (3,)])


def test_a_scalar_is_an_array_wherever_numpy_says_so():
    assert shape_of("sum(3)") == () and shape_of("max(x)") == () and shape_of("softmax(2)") == ()
    assert shape_of("transpose(x)") == ()


# --- deep structures stay non-recursive ---------------------------------------------------

def test_deeply_nested_literals_and_long_index_chains():
    depth = 10_000
    tape = parse("[" * depth + "x" + "]" * depth)
    assert [n.op for n in tape.nodes] == ["var"] + ["stack"] * depth
    tape = parse("x" + "[0]" * depth)
    assert [n.params for n in tape.nodes[1:]] == [((0,),)] * depth
    # shapes of rank 1,000 (a rank-10,000 shape costs 10,000 per node to build)
    depth = 1_000
    assert infer_shapes(parse("[" * depth + "x" + "]" * depth), {})[-1] == (1,) * depth
    assert infer_shapes(parse("x" + "[0]" * depth), {"x": (1,) * depth})[-1] == ()
    assert len(ops("(" * depth + "\n".join(["x"] + ["+ x"] * 3) + ")" * depth)) == 3


# --- the corpus: shapes end to end on the parser's side ----------------------------------

def corpus_cases():
    return [json.loads(line) for line in CORPUS.open()] if CORPUS.exists() else []


@pytest.mark.skipif(not CORPUS.exists(), reason="shared corpus not present")
def test_every_corpus_program_gets_the_output_shapes_of_its_expected_results():
    cases = corpus_cases()
    assert len(cases) >= 100
    for case in cases:
        tape = parse(case["program"])
        point = case["points"][0]
        shapes = infer_shapes(tape, {name: np.shape(value) for name, value in point.items()})
        expected = case["expected"][0]["shapes"]
        assert {o: list(shapes[n]) for o, n in zip(tape.outputs, tape.output_nodes)} == \
            {o: expected[o] for o in tape.outputs}, case["id"]
        for name in tape.variables:   # the inputs' shapes as the corpus states them
            assert list(np.shape(point[name])) == expected[name], case["id"]


@pytest.mark.skipif(not CORPUS.exists(), reason="shared corpus not present")
def test_larks_lexer_and_parser_agree_with_ours_on_the_array_corpus():
    from importlib import resources

    from lark import Lark
    from test_parse import _BracketNewlines

    from jacli.parse import tokens

    grammar = resources.files("jacli.grammar").joinpath("jacli.lark").read_text()
    reference = Lark(grammar, start="program", parser="lalr", lexer="basic",
                     postlex=_BracketNewlines())
    for case in corpus_cases():
        program = case["program"]
        ours = [(t.type, str(t), t.start_pos, t.end_pos) for t in tokens(program)]
        theirs = [(t.type, str(t), t.start_pos, t.end_pos)
                  for t in _BracketNewlines().process(reference.lex(program))]
        assert ours == theirs, case["id"]
        reference.parse(program)   # accepted by Lark's own LALR parser too


# --- the parser's meaning, end to end: the corpus's values by a NumPy interpreter ---------

def _numpy_ops():
    """Each op the parser emits, as NumPy computes it: written here, independently of
    jacli's engine and primitive table."""
    def reduce(function):
        return lambda a, params: function(a, axis=params[0])

    def softmax(a, params):
        z = np.exp(a - np.max(a, axis=params[0], keepdims=True))
        return z / np.sum(z, axis=params[0], keepdims=True)

    def index(a, params):
        return a[tuple(slice(*i) if type(i) is tuple else i for i in params[0])]

    unary = {"neg": np.negative, "sin": np.sin, "cos": np.cos, "tan": np.tan,
             "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh,
             "cosh": np.cosh, "tanh": np.tanh, "asinh": np.arcsinh, "acosh": np.arccosh,
             "atanh": np.arctanh, "exp": np.exp, "expm1": np.expm1, "log": np.log,
             "log1p": np.log1p, "log2": np.log2, "log10": np.log10, "sqrt": np.sqrt,
             "cbrt": np.cbrt, "abs": np.abs, "sign": np.sign,
             "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "softplus": lambda x: np.log1p(np.exp(x)),
             "relu": lambda x: np.maximum(x, 0), "transpose": np.transpose, "diag": np.diag,
             "trace": np.trace, "det": np.linalg.det, "inv": np.linalg.inv}
    binary = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
              "pow": np.power, "atan2": np.arctan2, "hypot": np.hypot, "matmul": np.matmul,
              "dot": np.dot, "outer": np.outer, "solve": np.linalg.solve}
    table = {op: (lambda f: lambda params, *a: f(*a))(f) for op, f in {**unary, **binary}.items()}
    table.update({
        "max": lambda params, *a: np.maximum.reduce(np.broadcast_arrays(*a)),
        "min": lambda params, *a: np.minimum.reduce(np.broadcast_arrays(*a)),
        "stack": lambda params, *a: np.stack(a),
        "index": lambda params, a: index(a, params),
        "softmax": lambda params, a: softmax(a, params),
        **{op: (lambda f: lambda params, a: reduce(f)(a, params))(f) for op, f in {
            "sum": np.sum, "mean": np.mean, "prod": np.prod, "amax": np.max, "amin": np.min,
            "norm": lambda a, axis: np.sqrt(np.sum(a * a, axis=axis)),
            "logsumexp": lambda a, axis: np.log(np.sum(np.exp(a), axis=axis)),
        }.items()},
    })
    return table


def numpy_outputs(source: str, point: dict) -> list[np.ndarray]:
    tape = parse(source)
    table, values = _numpy_ops(), []
    for node in tape.nodes:
        if node.op == "const":
            values.append(np.float64(node.value))
        elif node.op == "var":
            values.append(np.asarray(point[node.name], dtype=float))
        else:
            values.append(np.asarray(table[node.op](node.params,
                                                    *[values[a] for a in node.args])))
    return [values[n] for n in tape.output_nodes]


@pytest.mark.skipif(not CORPUS.exists(), reason="shared corpus not present")
def test_the_corpus_values_follow_from_the_parsed_programs():
    """The tape the parser builds, run by NumPy, gives every corpus value (tolerance of the
    corpus README): literals, subscripts, slices, precedence and axes mean what they should."""
    for case in corpus_cases():
        for point, expected in zip(case["points"], case["expected"]):
            got = np.concatenate([o.reshape(-1) for o in numpy_outputs(case["program"], point)])
            want = np.asarray(expected["value"], dtype=float).reshape(-1)
            assert got.shape == want.shape, case["id"]
            assert np.all(np.abs(got - want) <= 1e-8 * np.maximum(1, np.abs(want))), \
                (case["id"], got, want)


def _random_program(rng) -> tuple[str, dict]:
    """A random array expression over variables of random shapes (many of them
    mismatched), built without recursion, and the variables' values."""
    shapes = [(), (2,), (3,), (2, 3), (3, 3), (3, 2), (1, 3), (2, 1)]
    names = ["a", "b", "c", "d"]
    point = {n: rng.standard_normal(shapes[rng.integers(len(shapes))]) for n in names}
    parts = [str(rng.choice(names + ["2", "0.5"])) for _ in range(rng.integers(1, 5))]
    while len(parts) > 1 or rng.random() < 0.3:
        i = int(rng.integers(len(parts)))
        kind = rng.integers(9)
        if len(parts) > 1 and kind < 3:
            j = i + 1 if i + 1 < len(parts) else i - 1
            op = rng.choice(["+", "-", "*", "/", "@", "@"])
            merged = f"({parts[min(i, j)]} {op} {parts[max(i, j)]})"
            parts[min(i, j):max(i, j) + 1] = [merged]
            continue
        if len(parts) > 1 and kind == 3:
            j = i + 1 if i + 1 < len(parts) else i - 1
            merged = f"[{parts[min(i, j)]}, {parts[max(i, j)]}]"
            parts[min(i, j):max(i, j) + 1] = [merged]
            continue
        x = parts[i]
        if kind == 4:
            axis = rng.choice(["", ", axis=0", ", axis=1", ", axis=-1", ", axis=2"])
            parts[i] = f"{rng.choice(['sum', 'prod', 'max', 'min', 'norm', 'logsumexp'])}({x}{axis})"
        elif kind == 5:
            items = [str(rng.choice(["0", "1", "-1", "2", "-3", ":", "1:", ":-1", "::-1", "::2"]))
                     for _ in range(rng.integers(1, 3))]
            parts[i] = f"{x}[{', '.join(items)}]"
        elif kind == 6:
            parts[i] = f"{rng.choice(['transpose', 'tanh', 'exp', 'inv', 'det', 'trace'])}({x})"
        elif kind == 7:
            parts[i] = f"softmax({x}{rng.choice(['', ', axis=0', ', axis=1'])})"
        else:
            parts[i] = f"-{x}^2"
        if len(parts) == 1 and rng.random() < 0.5:
            break
    return parts[0], point


def test_random_array_programs_get_numpys_shapes_or_a_shape_error_where_numpy_fails():
    rng = np.random.default_rng(2026)
    errors = 0
    for _ in range(400):
        source, point = _random_program(rng)
        tape = parse(source)
        try:
            with np.errstate(all="ignore"):
                expected = numpy_outputs(source, point)[0].shape
        except (ValueError, IndexError, np.linalg.LinAlgError):
            expected = None
        try:
            got = infer_shapes(tape, {n: v.shape for n, v in point.items()})[tape.output_nodes[0]]
        except JacliError as error:
            assert error.span is not None and error.source == source
            got = None
            errors += 1
        assert got == expected, (source, {n: v.shape for n, v in point.items()})
    assert 50 < errors < 350   # both paths were exercised

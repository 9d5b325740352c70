"""Array values between the command line and the API (arrays.md): component names, --at
lists and @FILE, --shape, points files with arrays, and the output formats over components.

The expected names, shapes and layouts are written out by hand from arrays.md, and checked
against the `shapes` of ../shared/corpus/arrays.jsonl; none is taken from jacli's output.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import invoke_jacli
from jacli.components import (ColumnError, component_names, flatten, group_columns,
                              hessian_names, jacobian_names, nested_array, unflatten)
from jacli.errors import JacliError
from jacli.points import PointsReader, parse_at, parse_shapes, read_values_file

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "arrays.jsonl"
if not CORPUS.exists():
    CORPUS = Path("/work/shared/corpus/arrays.jsonl")


def error_of(function, *args, **kwargs) -> JacliError:
    with pytest.raises(JacliError) as caught:
        function(*args, **kwargs)
    return caught.value


def caret(error: JacliError) -> tuple[str, str]:
    """The source line and the caret line of a rendered error."""
    lines = error.render().splitlines()
    return lines[1].strip(), lines[2].strip()


def under(error: JacliError) -> str:
    """The text the caret is under."""
    return error.source[error.span[0]:error.span[1]]


# --- component names ---------------------------------------------------------------------

def test_component_names_are_row_major_with_a_bracket_per_axis():
    assert component_names("s", ()) == ["s"]
    assert component_names("x", (3,)) == ["x[0]", "x[1]", "x[2]"]
    assert component_names("W", (2, 3)) == ["W[0][0]", "W[0][1]", "W[0][2]",
                                            "W[1][0]", "W[1][1]", "W[1][2]"]
    assert component_names("T", (1, 2, 2))[-1] == "T[0][1][1]"
    # Row-major as NumPy's C order: the k-th name indexes the k-th element of ravel().
    T = np.arange(12).reshape(2, 3, 2)
    for k, name in enumerate(component_names("T", T.shape)):
        index = tuple(int(i) for i in name[2:-1].split("]["))
        assert T[index] == T.ravel()[k]


def test_derivative_column_names():
    assert jacobian_names(["y[0]", "y[1]"], ["x[0]"]) == ["dy[0]/dx[0]", "dy[1]/dx[0]"]
    assert hessian_names("f", ["x[0]", "x[2]"])[1] == "d2f/dx[0]dx[2]"
    assert jacobian_names(["f"], ["x", "y"]) == ["df/dx", "df/dy"]


def test_flatten_and_unflatten_are_inverse_over_components():
    rng = np.random.default_rng(0)
    values = {"s": rng.normal(size=4), "x": rng.normal(size=(4, 3)),
              "W": rng.normal(size=(4, 2, 3))}
    table = flatten(values, ["x", "s", "W"], 4)
    assert table.shape == (4, 3 + 1 + 6)
    assert table[2, 3] == values["s"][2]
    assert table[1, 4 + 5] == values["W"][1, 1, 2]          # W[1][2] is W's last component
    back = unflatten(table, {"x": (3,), "W": (2, 3)}, ["x", "s", "W"])
    for name, value in values.items():
        assert np.array_equal(back[name], value)
    assert flatten({"x": np.zeros((0, 3))}, ["x"], 0).shape == (0, 3)


def test_component_columns_in_any_order_make_variables():
    header = ["id", "x[1]", "W[0][1]", "x[0]", "s", "W[1][1]", "W[0][0]", "W[1][0]", "other"]
    groups = group_columns(header, ["x", "W", "s"])
    assert groups["s"].shape == () and groups["s"].columns == [4]
    assert groups["x"].shape == (2,) and groups["x"].columns == [3, 1]
    assert groups["W"].shape == (2, 2) and groups["W"].columns == [6, 2, 7, 5]
    assert "other" not in groups and "id" not in groups


@pytest.mark.parametrize("header, words", [
    (["x[0]", "x[2]"], "no column 'x[1]'"),
    (["W[0][0]", "W[1][1]", "W[0][1]"], "no column 'W[1][0]'"),
    (["x", "x[0]"], "both as the column 'x' and as components"),
    (["x[0]", "x[1][0]"], "components of different ranks"),
    (["x[0]", "x[0]"], "has the column 'x[0]' twice"),
])
def test_component_columns_that_do_not_make_a_variable(header, words):
    with pytest.raises(ColumnError, match=words.replace("[", r"\[").replace("]", r"\]")):
        group_columns(header, ["x", "W"])


def test_nested_lists_become_arrays_and_ragged_ones_are_refused():
    assert nested_array([[1, 2], [3, 4]], float).tolist() == [[1, 2], [3, 4]]
    assert nested_array(2.5, float).shape == ()
    for ragged in ([[1, 2], [3]], [[1, 2], 3], [1, [2]], [[[1]], [2]]):
        with pytest.raises(ValueError, match="ragged"):
            nested_array(ragged, float)
    with pytest.raises(ValueError, match="empty"):
        nested_array([], float)
    deep = 1.0
    for _ in range(64):
        deep = [deep]
    assert nested_array(deep, float).shape == (1,) * 64
    for _ in range(5000):   # no recursion over the depth: a clean refusal
        deep = [deep]
    with pytest.raises(ValueError, match="nested deeper than 64"):
        nested_array(deep, float)


# --- --at values -------------------------------------------------------------------------

def test_at_takes_nested_lists_and_commas_inside_brackets_do_not_separate():
    values = parse_at(["x=[1,2,3]", "W=[[1, 2], [3, 4]],b=0.5", "v=[nan, inf, -inf]"])
    assert values["x"].tolist() == [1.0, 2.0, 3.0]
    assert values["W"].shape == (2, 2) and values["W"][1, 0] == 3.0
    assert values["b"] == 0.5 and isinstance(values["b"], float)
    assert np.isnan(values["v"][0]) and values["v"][1] == np.inf and values["v"][2] == -np.inf
    assert parse_at(["x=[5]"])["x"].shape == (1,)   # a list of one is a vector, not a scalar


def test_at_list_elements_may_be_constant_expressions():
    values = parse_at(["x=[pi/4, atan2(1, 2), -sqrt(2)]"])
    assert values["x"].tolist() == pytest.approx([np.pi / 4, np.arctan2(1, 2), -np.sqrt(2)])


@pytest.mark.parametrize("item, message, caret_text", [
    ("W=[[1,2],[3]]", "the value of 'W' is ragged: this element has shape (1,), the first "
                      "element (2,)", "[3]"),
    ("W=[[1,2],3]", "the value of 'W' is ragged: this element has shape (), the first "
                    "element (2,)", "3"),
    ("y=1,x=[]", "the value of 'x' has an empty list", "[]"),
    ("x=[1,,2]", "the value of 'x' has an empty element", ","),
    ("x=[1,2,]", "the value of 'x' has an empty element", "]"),
    ("x=[1,2", "the value of 'x' has an unclosed '['", "["),
    ("x=[[1][2]]", "the value of 'x' is missing a comma", "["),
    ("x=[1,2]x", "the value of 'x' is not a number or a list of numbers: 'x' follows its "
                 "closing ']'", "x"),
    ("x=[1,foo]", "the value of 'x' must be a constant: 'foo' is a variable", "foo"),
    ("x=[1 2]", "the value of 'x' has elements without a comma between them", "1 2"),
])
def test_at_list_errors_name_the_variable_with_a_caret(item, message, caret_text):
    error = error_of(parse_at, [item])
    assert error.message == message
    assert error.origin == "--at"
    assert under(error) == caret_text
    line, marks = caret(error)
    assert line == item and marks == "^" * len(caret_text)


def test_a_ragged_at_value_exits_2_with_its_caret():
    code, out, err = invoke_jacli("eval", "x", "--at", "x=[[1,2],[3]]")
    assert code == 2 and out == ""
    assert err == ("jacli: error: --at:1:10: the value of 'x' is ragged: this element has "
                   "shape (1,), the first element (2,)\n  x=[[1,2],[3]]\n           ^^^\n")


def test_at_file_reads_one_json_object(tmp_path):
    path = tmp_path / "params.json"
    path.write_text('{"W": [[1, 2], [3, 4]], "b": 0.5, "c": "-inf"}')
    values = parse_at([f"@{path}", "x=[1, 2]"])
    assert values["W"].tolist() == [[1, 2], [3, 4]] and values["b"] == 0.5
    assert values["c"] == -np.inf and values["x"].tolist() == [1, 2]


@pytest.mark.parametrize("text, words", [
    ('{"W": [[1, 2], [3]]}', "the value of 'W' is ragged"),
    ("[1, 2]", "must hold one JSON object"),
    ('{"W": [1, true]}', "the value of 'W' is not a number: true"),
    ('{"W": []}', "the value of 'W' has an empty list"),
    ('{"not a name": 1}', "'not a name' is not a variable name"),
])
def test_at_file_errors_name_the_file(tmp_path, text, words):
    path = tmp_path / "p.json"
    path.write_text(text)
    error = error_of(parse_at, [f"@{path}"])
    assert words in error.message and str(path) in error.render()


def test_at_file_that_is_not_json_points_at_the_place(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"W": [1, 2,\n  ]}')
    error = error_of(parse_at, [f"@{path}"])
    assert error.render().startswith(f"error: {path}:2:3: not JSON: ")
    assert caret(error) == ("]}", "^")
    missing = error_of(parse_at, [f"@{tmp_path / 'none.json'}"])
    assert missing.message == f"cannot read {tmp_path / 'none.json'}: No such file or directory"


def test_a_variable_given_by_a_file_and_by_a_value_is_given_twice(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"b": 1}')
    error = error_of(parse_at, [f"@{path}", "b=2"])
    assert error.message == f"'b' is given twice ({path} gives it too)"


def test_shape_option_parses_sizes_joined_by_x():
    assert parse_shapes(["x=3,W=2x3", "T=1x2x3"]) == {"x": (3,), "W": (2, 3), "T": (1, 2, 3)}
    for item, words, marked in [("x=3,x=2", "'x' is given twice", "x=2"),
                                ("x=a", "the shape of 'x' is not sizes joined by 'x'", "x=a"),
                                ("x=2x", "the shape of 'x' is not sizes joined by 'x'", "x=2x"),
                                ("x=0", "the shape of 'x' has a size 0", "x=0"),
                                ("x", "expected name=shape", "x")]:
        error = error_of(parse_shapes, [item])
        assert words in error.message and under(error) == marked and error.origin == "--shape"


# --- points files with arrays ------------------------------------------------------------

def read_points(path, wanted, required=None, **kwargs):
    reader = PointsReader(str(path), None, wanted, wanted if required is None else required,
                          kwargs.pop("npy_columns", []), **kwargs)
    chunks = list(reader.chunks())
    from jacli.points import Points
    return Points.concat(chunks)


def test_csv_component_columns_become_arrays(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("x[1],s,W[0][0],x[0],W[1][1],W[0][1],W[1][0],id\n"
                    "2,5,10,1,40,20,30,a\n"
                    "-2,6,11,-1,41,21,31,b\n")
    points = read_points(path, ["x", "s", "W"])
    assert points.columns["x"].tolist() == [[1, 2], [-1, -2]]
    assert points.columns["s"].tolist() == [5, 6]
    assert points.columns["W"].tolist() == [[[10, 20], [30, 40]], [[11, 21], [31, 41]]]


def test_csv_bad_row_names_its_component_column(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("x[0],x[1]\n1,2\n3,oops\n5,6\n")
    points = read_points(path, ["x"])
    assert points.bad_rows == {1: "the value of 'x[1]' is not a number: 'oops'"}
    assert points.columns["x"][2].tolist() == [5, 6]


@pytest.mark.parametrize("header, message", [
    ("x[0],x[2]", "p.csv gives components of 'x' up to 'x[2]' but no column 'x[1]'"),
    ("x,x[0]", "p.csv gives 'x' both as the column 'x' and as components ('x[0]')"),
    ("x[0],x[0]", "p.csv has the column 'x[0]' twice"),
])
def test_csv_component_header_errors(tmp_path, header, message):
    path = tmp_path / "p.csv"
    path.write_text(header + "\n1,2\n")
    error = error_of(PointsReader, str(path), None, ["x"], ["x"], [])
    assert error.message == f"{tmp_path}/{message}" and error.origin == "--points"


def test_a_missing_component_column_exits_2_naming_it(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("x[0],x[2]\n1,2\n")
    code, out, err = invoke_jacli("eval", "x", "--points", str(path))
    assert code == 2 and out == ""
    assert err == (f"jacli: error: --points: {path} gives components of 'x' up to 'x[2]' "
                   "but no column 'x[1]'\n")


def test_json_lines_arrays_and_a_row_of_another_shape_is_bad(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"x": [1, 2], "W": [[1, 2], [3, 4]]}\n'
                    '{"x": [1, 2, 3], "W": [[1, 2], [3, 4]]}\n'
                    '{"x": [5, 6], "W": [[1, 2], [3]]}\n'
                    '{"x": 7, "W": [[1, 2], [3, 4]]}\n'
                    '{"x": ["nan", "inf"], "W": [[0, 0], [0, -1]]}\n')
    points = read_points(path, ["x", "W"])
    assert points.count == 5
    assert points.bad_rows == {
        1: "the value of 'x' has shape (3,), the first row's (2,)",
        2: "the value of 'W' is ragged: a list of 1 where the first elements give 2 "
           "(shape (2, 2))",
        3: "the value of 'x' is a number, the first row's has shape (2,)"}
    assert points.columns["x"].shape == (5, 2) and points.columns["W"].shape == (5, 2, 2)
    assert points.columns["x"][0].tolist() == [1, 2]
    assert np.isnan(points.columns["x"][4, 0]) and points.columns["x"][4, 1] == np.inf
    assert points.columns["W"][4, 1, 1] == -1.0


def test_json_lines_first_row_shape_holds_across_chunks(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"x": [1, 2]}\n{"x": [3, 4]}\n{"x": [1]}\n')
    reader = PointsReader(str(path), None, ["x"], ["x"], [])
    chunks = list(reader.chunks(rows=1))
    assert [c.bad_rows for c in chunks] == [{}, {}, {0: "the value of 'x' has shape (1,), "
                                                      "the first row's (2,)"}]


def test_a_json_lines_row_of_another_shape_exits_1_and_keeps_its_line(tmp_path,
                                                                      monkeypatch):
    # The row is bad before any evaluation: eval of a program that only passes x on needs
    # no array engine, so a scalar engine sees only the shape-() rows.
    path = tmp_path / "p.jsonl"
    path.write_text('{"x": 1}\n{"x": [1, 2]}\n{"x": 3}\n')
    code, out, err = invoke_jacli("eval", "2*x", "--points", str(path))
    assert code == 1
    assert out == "2.0\nnan\n6.0\n"
    assert err == ("jacli: row 2: the value of 'x' is not a number: [1, 2]\n"
                   "jacli: 1 of 3 rows failed; 2 evaluated\n")


def test_npz_points_hold_an_array_per_variable_points_first(tmp_path):
    path = tmp_path / "p.npz"
    x, W, s = np.arange(6.0).reshape(2, 3), np.arange(8.0).reshape(2, 2, 2), np.array([1.0, 2])
    np.savez(path, x=x, W=W, s=s, scalar_as_column=np.ones((2, 1)))
    points = read_points(path, ["x", "W", "s", "scalar_as_column"])
    assert np.array_equal(points.columns["x"], x) and np.array_equal(points.columns["W"], W)
    assert points.columns["s"].shape == (2,)
    assert points.columns["scalar_as_column"].shape == (2,)   # (B, 1): a scalar, as in v1
    kept = read_points(path, ["scalar_as_column"], shapes={"scalar_as_column": (1,)})
    assert kept.columns["scalar_as_column"].shape == (2, 1)   # unless --shape says (1,)
    error = error_of(read_points, path, ["x"], shapes={"x": (2,)})
    assert error.message == (f"the array 'x' of {path} has shape (2, 3); --shape says (2,): "
                             "expected (2, 2)")


def test_npy_points_columns_are_components_in_wrt_order(tmp_path):
    path = tmp_path / "p.npy"
    np.save(path, np.array([[1.0, 2, 3, 10], [4, 5, 6, 20]]))
    points = read_points(path, ["x", "s"], npy_columns=["x[0]", "x[1]", "x[2]", "s"])
    assert points.columns["x"].tolist() == [[1, 2, 3], [4, 5, 6]]
    assert points.columns["s"].tolist() == [10, 20]


def test_corpus_points_read_with_the_shapes_of_expected():
    cases = [json.loads(line) for line in CORPUS.read_text().splitlines()[:40]]
    for case in cases:
        text = "".join(json.dumps(p) + "\n" for p in case["points"])
        names = list(case["points"][0])
        from jacli.points import _parse_jsonl
        points = _parse_jsonl(text.splitlines(), names, names)
        assert not points.bad_rows, case["id"]
        for name in names:
            assert list(points.columns[name].shape[1:]) == case["expected"][0]["shapes"][name]

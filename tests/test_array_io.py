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
                              hessian_names, jacobian_names, nested_array, parse_shapes,
                              unflatten)
from jacli.errors import JacliError
from jacli.points import PointsReader, parse_at

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
        1: "the value of 'x' has shape (3,); the first row's (2,)",
        2: "the value of 'W' is ragged: a list of 1 where the first elements give 2 "
           "(shape (2, 2))",
        3: "the value of 'x' has shape (); the first row's (2,)"}
    assert points.columns["x"].shape == (5, 2) and points.columns["W"].shape == (5, 2, 2)
    assert points.columns["x"][0].tolist() == [1, 2]
    assert np.isnan(points.columns["x"][4, 0]) and points.columns["x"][4, 1] == np.inf
    assert points.columns["W"][4, 1, 1] == -1.0


def test_json_lines_first_row_shape_holds_across_chunks(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"x": [1, 2]}\n{"x": [3, 4]}\n{"x": [1]}\n')
    reader = PointsReader(str(path), None, ["x"], ["x"], [])
    chunks = list(reader.chunks(rows=1))
    assert [c.bad_rows for c in chunks] == [{}, {}, {0: "the value of 'x' has shape (1,); "
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


# --- output formats over components, through the CLI and the array engine ---------------
#
# The CLI gives the API every value batched (B, *shape) with batch=True and prints results
# flat over components plus the outputs' shapes (arrays.md). The fixture below records what
# the CLI passes (which method, the values' shapes) and lets the real engine answer; the
# expected numbers are hand-derived for y = W @ x, s = sum(x) and f = sum(x^2).

import jacli.api
import jacli.cli
import jacli.batch

LINEAR = "y = W @ x; s = sum(x)"
SQUARES = "f = sum(x^2)"


@pytest.fixture
def stand_in_engine(monkeypatch):
    """A spy on the API: each call's method and values' shapes, then the real method."""
    calls = []

    def method(kind, original):
        def call(self, values, *args, batch=None, **kwargs):
            assert batch is True
            calls.append((kind, {n: np.shape(v) for n, v in values.items()}))
            return original(self, values, *args, batch=batch, **kwargs)
        return call

    for kind in ("eval", "jacobian", "grad", "hessian", "jvp", "vjp"):
        monkeypatch.setattr(jacli.api.Program, kind,
                            method(kind, getattr(jacli.api.Program, kind)), raising=True)
    return calls


AT = ["--at", "x=[1,0,-1]", "--at", "W=[[1,2,3],[4,5,6]]"]
# Hand-derived at x = (1, 0, -1), W = [[1, 2, 3], [4, 5, 6]]: y = W x = (-2, -2), s = 0;
# dy_i/dx_j = W_ij, dy_i/dW_jk = [i = j] x_k, ds/dx = 1, ds/dW = 0.
JAC_ROWS = [[1, 2, 3, 1, 0, -1, 0, 0, 0],
            [4, 5, 6, 0, 0, 0, 1, 0, -1],
            [1, 1, 1, 0, 0, 0, 0, 0, 0]]
INPUTS = ["x[0]", "x[1]", "x[2]", "W[0][0]", "W[0][1]", "W[0][2]", "W[1][0]", "W[1][1]",
          "W[1][2]"]


def test_plain_jac_line_is_the_m_by_n_jacobian_row_major(stand_in_engine):
    code, out, err = invoke_jacli("jac", LINEAR, *AT, "--wrt", "x,W", "--format", "plain")
    assert (code, err) == (0, "")
    assert [float(v) for v in out.split()] == [v for row in JAC_ROWS for v in row]
    assert out.count("\n") == 1
    # every value was batched, the points first (one point here)
    assert stand_in_engine == [("jacobian", {"x": (1, 3), "W": (1, 2, 3)})]


def test_json_lists_components_nests_at_and_gives_shapes(stand_in_engine):
    code, out, err = invoke_jacli("jac", LINEAR, *AT, "--wrt", "x,W", "--format", "json")
    assert code == 0
    got = json.loads(out)
    assert list(got) == ["inputs", "outputs", "at", "value", "jacobian", "shapes"]
    assert got["inputs"] == INPUTS and got["outputs"] == ["y[0]", "y[1]", "s"]
    assert got["at"] == {"x": [1.0, 0.0, -1.0], "W": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]}
    assert got["value"] == [-2.0, -2.0, 0.0] and got["jacobian"] == JAC_ROWS
    assert got["shapes"] == {"x": [3], "W": [2, 3], "y": [2], "s": []}


def test_csv_has_a_column_per_component(stand_in_engine):
    code, out, err = invoke_jacli("jac", LINEAR, *AT, "--wrt", "x,W", "--format", "csv")
    header, row = out.splitlines()
    columns = header.split(",")
    # the values shown: the program's variables in order of appearance (W, then x)
    assert columns[:9] == INPUTS[3:] + INPUTS[:3] and columns[9:12] == ["y[0]", "y[1]", "s"]
    assert columns[12:15] == ["dy[0]/dx[0]", "dy[0]/dx[1]", "dy[0]/dx[2]"]
    assert columns[15] == "dy[0]/dW[0][0]" and columns[-1] == "ds/dW[1][2]"
    assert len(columns) == 9 + 3 + 27
    numbers = [float(v) for v in row.split(",")]
    assert numbers[:9] == [1, 2, 3, 4, 5, 6, 1, 0, -1]
    assert numbers[12:] == [v for r in JAC_ROWS for v in r]


def test_npy_is_flat_and_npz_has_jax_shaped_blocks(stand_in_engine, tmp_path):
    points = tmp_path / "p.jsonl"
    points.write_text('{"x": [1, 0, -1], "W": [[1, 2, 3], [4, 5, 6]]}\n'
                      '{"x": [2, 1, 0], "W": [[1, 0, 0], [0, 1, 0]]}\n')
    code, _, err = invoke_jacli("jac", LINEAR, "--points", str(points), "--wrt", "x,W",
                                "-o", str(tmp_path / "J.npy"))
    assert (code, err) == (0, "")
    J = np.load(tmp_path / "J.npy")
    assert J.shape == (2, 3, 9) and J[0].tolist() == JAC_ROWS
    code, _, err = invoke_jacli("jac", LINEAR, "--points", str(points), "--wrt", "x,W",
                                "-o", str(tmp_path / "J.npz"))
    with np.load(tmp_path / "J.npz") as npz:
        arrays = {name: npz[name] for name in npz.files}
    assert arrays["jacobian"].shape == (2, 3, 9)
    assert arrays["inputs"].tolist() == INPUTS
    assert arrays["value/y"].shape == (2, 2) and arrays["value/s"].shape == (2,)
    assert arrays["value/y"][1].tolist() == [2.0, 1.0]
    # jax.jacobian's layout: (B, *out_shape, *in_shape)
    assert arrays["jacobian/y/x"].shape == (2, 2, 3)
    assert arrays["jacobian/y/x"][1].tolist() == [[1, 0, 0], [0, 1, 0]]       # = W
    assert arrays["jacobian/y/W"].shape == (2, 2, 2, 3)
    x1 = np.array([2.0, 1, 0])
    assert np.array_equal(arrays["jacobian/y/W"][1],
                          np.einsum("ij,k->ijk", np.eye(2), x1))            # [i=j] x_k
    assert arrays["jacobian/s/x"].shape == (2, 3) and arrays["jacobian/s/W"].shape == (2, 2, 3)
    assert arrays["jacobian/s/x"].tolist() == [[1, 1, 1]] * 2


def test_grad_and_hess_blocks_and_headers(stand_in_engine, tmp_path):
    code, out, err = invoke_jacli("hess", SQUARES, "--at", "x=[1,2,3]", "--format", "csv")
    assert code == 0
    header, row = out.splitlines()
    assert header.split(",")[:4] == ["x[0]", "x[1]", "x[2]", "f"]
    assert "d2f/dx[0]dx[2]" in header and "df/dx[1]" in header
    assert [float(v) for v in row.split(",")][3:7] == [14, 2, 4, 6]
    code, _, _ = invoke_jacli("hess", SQUARES, "--at", "x=[1,2,3]", "-o", str(tmp_path / "h.npz"))
    with np.load(tmp_path / "h.npz") as npz:
        assert npz["gradient/x"].tolist() == [[2, 4, 6]]
        assert npz["hessian/x/x"].tolist() == [np.diag([2.0, 2, 2]).tolist()]
        assert npz["value/f"].tolist() == [14.0]
    code, out, _ = invoke_jacli("grad", SQUARES, "--at", "x=[1,2,3]", "--format", "json")
    got = json.loads(out)
    assert got["value"] == 14.0 and got["gradient"] == [2.0, 4.0, 6.0]
    assert got["shapes"] == {"x": [3], "f": []}


def test_array_seeds_are_batched_like_values(stand_in_engine):
    code, out, err = invoke_jacli("jvp", LINEAR, *AT, "--tangent", "x=[1,0,0]",
                                  "--format", "json")
    assert code == 0, err
    assert json.loads(out)["jvp"] == [1.0, 4.0, 1.0]   # the first column: W[:, 0], then 1
    code, out, err = invoke_jacli("vjp", LINEAR, *AT, "--cotangent", "y=[1,0]",
                                  "--wrt", "x", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["vjp"] == [1.0, 2.0, 3.0]   # the first row of W


def test_a_row_of_another_shape_is_a_bad_row_and_nothing_else_is_lost(stand_in_engine,
                                                                      tmp_path):
    points = tmp_path / "p.jsonl"
    points.write_text('{"x": [1, 2, 3]}\n{"x": [1, 2]}\n{"x": [0, 0, 1]}\n')
    code, out, err = invoke_jacli("grad", SQUARES, "--points", str(points), "--format", "json")
    assert code == 1
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["gradient"] == [2.0, 4.0, 6.0] and lines[2]["gradient"] == [0.0, 0.0, 2.0]
    assert lines[1] == {"row": 2, "error": "the value of 'x' has shape (2,); the first "
                                          "row's (3,)"}
    assert err == ("jacli: row 2: the value of 'x' has shape (2,); the first row's (3,)\n"
                   "jacli: 1 of 3 rows failed; 2 evaluated\n")
    code, out, err = invoke_jacli("grad", SQUARES, "--points", str(points), "--format", "plain")
    assert out.splitlines() == ["2.0 4.0 6.0", "nan nan nan", "0.0 0.0 2.0"]


def test_shared_at_arrays_reach_every_point_and_csv_components_are_read(stand_in_engine,
                                                                        tmp_path):
    points = tmp_path / "p.csv"
    points.write_text("x[2],x[0],x[1]\n-1,1,0\n0,2,1\n")
    code, out, err = invoke_jacli("eval", LINEAR, "--points", str(points),
                                  "--at", "W=[[1,2,3],[4,5,6]]", "--format", "json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["value"] for r in rows] == [[-2.0, -2.0, 0.0], [4.0, 13.0, 3.0]]
    assert rows[1]["at"] == {"x": [2.0, 1.0, 0.0], "W": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]}
    assert stand_in_engine == [("eval", {"x": (2, 3), "W": (2, 2, 3)})]


def test_npy_points_take_their_shapes_from_the_shape_option(stand_in_engine, tmp_path):
    path = tmp_path / "p.npy"
    np.save(path, np.array([[1.0, 2, 3], [0, 0, 1]]))
    code, out, err = invoke_jacli("grad", SQUARES, "--points", str(path), "--shape", "x=3")
    assert (code, err) == (0, "")
    assert out.splitlines() == ["2.0 4.0 6.0", "0.0 0.0 2.0"]


def test_shape_option_must_name_a_variable_and_agree_with_at():
    code, _, err = invoke_jacli("eval", "x", "--shape", "y=3")
    assert code == 2 and err == ("jacli: error: --shape: 'y' is not a variable of the "
                                 "program (its variables: x)\n")
    code, _, err = invoke_jacli("eval", "x", "--at", "x=[1,2]", "--shape", "x=3")
    assert code == 2 and err == ("jacli: error: --shape: --shape gives 'x' the shape (3,), "
                                 "and --at a value of shape (2,)\n")


# --- the writers on scalars and on the corpus's layout -----------------------------------

from jacli.formats import Report, Shapes, write_json  # noqa: E402


def _json_of(report: Report) -> list[dict]:
    out = io.StringIO()
    write_json(report, out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_scalar_shapes_write_exactly_what_no_shapes_write():
    at = np.array([[1.0, 2.0]])
    base = Report("jac", ["x", "y"], ["f"], ["x", "y"], at, np.array([[3.0]]),
                  np.array([[[1.0, 2.0]]]), {}, None, None, None, 0)
    scalar = base._replace(shapes=Shapes.of({"x": (), "y": ()}, ["x", "y"], {"f": ()}))
    for write in (write_json,):
        a, b = io.StringIO(), io.StringIO()
        write(base, a)
        write(scalar, b)
        assert a.getvalue() == b.getvalue() and "shapes" not in a.getvalue()


def test_json_layout_matches_the_corpus_expected_objects():
    """Reports built from the corpus's own points and expected numbers write JSON whose
    keys, `at` (the points as given) and `shapes` are the corpus's."""
    for line in CORPUS.read_text().splitlines():
        case = json.loads(line)
        point, expected = case["points"][0], case["expected"][0]
        shapes = {name: tuple(dims) for name, dims in expected["shapes"].items()}
        variables = {name: shapes[name] for name in point}
        outputs = {name: dims for name, dims in shapes.items() if name not in point}
        report_shapes = Shapes.of(variables, case["wrt"], outputs)
        names, inputs, outs = report_shapes.names()
        at = np.concatenate([np.ravel(point[n]) for n in variables])[None]
        value = np.reshape(expected["value"], (1, -1))
        command = case["command"]
        jacobian = hessian = None
        if command == "jac":
            jacobian = np.array(expected["jacobian"])[None]
        if command in ("grad", "hess"):
            jacobian = np.array(expected["gradient"])[None, None]
        if command == "hess":
            hessian = np.array(expected["hessian"])[None]
        report = Report(command, inputs, outs, names, at, value, jacobian, {}, hessian,
                        None, None, 0, report_shapes)
        got = _json_of(report)[0]
        assert set(got) == {"inputs", "outputs", "at"} | set(expected), case["id"]
        assert got["at"] == {n: (np.array(v, dtype=float).tolist()) for n, v in point.items()}
        assert got["shapes"] == expected["shapes"], case["id"]
        assert len(got["outputs"]) == len(np.ravel(expected["value"]))


def test_array_chunks_are_sized_by_components(stand_in_engine, tmp_path, monkeypatch):
    # grad of f(x), x with 10 components: a row holds 1 + 1 + 10 numbers, so at most
    # 1000 numbers per chunk is 83 rows; the first chunk (16 rows) tells m.
    monkeypatch.setattr(jacli.batch, "RESULT_FLOATS", 1000)
    path = tmp_path / "p.jsonl"
    rows = [list(np.arange(10.0) + k) for k in range(200)]
    path.write_text("".join(json.dumps({"x": r}) + "\n" for r in rows))
    code, out, err = invoke_jacli("grad", SQUARES, "--points", str(path))
    assert (code, err) == (0, "")
    assert [shapes["x"][0] for _, shapes in stand_in_engine] == [16, 83, 83, 18]
    got = [[float(v) for v in line.split()] for line in out.splitlines()]
    assert got == [[2 * v for v in r] for r in rows]


def test_an_empty_array_points_file_writes_the_csv_header(stand_in_engine, tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("x[0],x[1]\n")
    code, out, err = invoke_jacli("grad", SQUARES, "--points", str(path), "--shape", "x=2",
                                  "--format", "csv")
    assert (code, err) == (0, "")
    assert out == "x[0],x[1],f,df/dx[0],df/dx[1]\n"


def test_npy_columns_may_name_components(tmp_path):
    path = tmp_path / "p.npy"
    np.save(path, np.array([[1.0, 2, 3], [4, 5, 6]]))
    reader = PointsReader(str(path), None, ["x", "s"], ["x", "s"], [],
                          columns=["s", "x[1]", "x[0]"])
    points = next(reader.chunks())
    assert points.columns["s"].tolist() == [1, 4]
    assert points.columns["x"].tolist() == [[3, 2], [6, 5]]
    error = error_of(PointsReader, str(path), None, ["x"], ["x"], [],
                     columns=["x[0]", "x[2]", "y"])
    assert error.message == "--columns gives components of 'x' up to 'x[2]' but no column 'x[1]'"


def test_points_of_arrays_concatenate_with_their_shapes():
    from jacli.points import Points
    a = Points({"x": np.ones((2, 3))}, 2, {1: "bad"}, 0)
    b = Points({"s": np.zeros(1)}, 1, {}, 2)
    both = Points.concat([a, b])
    assert both.columns["x"].shape == (3, 3) and np.isnan(both.columns["x"][2]).all()
    assert both.columns["s"].shape == (3,) and both.bad_rows == {1: "bad"}
    head, rest = both.cut(2)
    assert (head.count, rest.count, rest.first_row, head.bad_rows) == (2, 1, 2, {1: "bad"})


def test_an_at_file_error_exits_2_naming_the_file(tmp_path):
    path = tmp_path / "w.json"
    path.write_text('{"W": [[1, 2], [3]]}')
    code, out, err = invoke_jacli("eval", "W", "--at", f"@{path}")
    assert (code, out) == (2, "")
    assert err == (f"jacli: error: --at: {path}: the value of 'W' is ragged: a list of 1 "
                   "where the first elements give 2 (shape (2, 2))\n")


def test_json_lines_array_elements_must_be_numbers(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"x": [1, 2]}\n{"x": [1, "oops"]}\n{"x": [true, 2]}\n{"x": [[1], [2]]}\n')
    points = read_points(path, ["x"])
    assert points.bad_rows == {1: "the value of 'x' is not a number: \"oops\"",
                               2: "the value of 'x' is not a number: true",
                               3: "the value of 'x' has shape (2, 1); the first row's (2,)"}


# --- the arrays corpus through the command line --------------------------------------------

def _array_cases() -> list:
    if not CORPUS.is_file():
        return [pytest.param(None, id="no-corpus", marks=pytest.mark.skip(
            reason=f"arrays corpus not found at {CORPUS}"))]
    return [pytest.param(json.loads(line), id=json.loads(line)["id"])
            for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("case", _array_cases())
def test_arrays_corpus_case(case, tmp_path):
    """As the corpus README says: `jacli <command> -f PROGRAM --wrt ... --points
    POINTS.jsonl --format json`, every expected key within 1e-8 * max(1, |ref|), and
    `shapes` equal."""
    from corpus import compare, write_inputs

    program, points = write_inputs(case, tmp_path)
    code, out, err = invoke_jacli(case["command"], "-f", str(program), "--wrt",
                                  ",".join(case["wrt"]), "--points", str(points),
                                  "--format", "json")
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == len(case["points"]), out
    problems: list[str] = []
    for k, (line, expected) in enumerate(zip(lines, case["expected"])):
        got = json.loads(line)
        for key, ref in expected.items():
            if key == "shapes":
                if got.get("shapes") != ref:
                    problems.append(f"point {k} shapes: expected {ref}, got {got.get('shapes')}")
            elif key not in got:
                problems.append(f"point {k}: missing key {key!r}")
            else:
                compare(got[key], ref, f"point {k} {key}", problems)
    assert not problems, f"{case['id']} {case['program']!r}:\n" + "\n".join(problems)


def test_points_must_agree_with_the_shape_option(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("x[0],x[1]\n1,2\n")
    error = error_of(PointsReader, str(csv), None, ["x"], ["x"], [], shapes={"x": (3,)})
    assert error.message == (f"the columns of {csv} give 'x' the shape (2,); --shape says (3,)")
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"x": [1, 2, 3]}\n{"x": [1, 2]}\n')
    points = read_points(jsonl, ["x"], shapes={"x": (2,)})
    assert points.bad_rows == {0: "the value of 'x' has shape (3,); --shape says (2,)"}


def test_grad_of_an_array_output_names_its_shape(stand_in_engine):
    code, out, err = invoke_jacli("grad", LINEAR, *AT, "--out", "y")
    assert (code, out) == (2, "")
    assert err == ("jacli: error: program:1:1: grad needs an output with one element, but "
                   "'y' has shape (2,)\n  y = W @ x; s = sum(x)\n  ^^^^^^^^^\n  hint: take "
                   "sum(...) of it for a scalar, or use jac for the Jacobian of all its 2 "
                   "components\n")
    code, out, err = invoke_jacli("hess", LINEAR, *AT, "--out", "y", "--wrt", "x")
    assert code == 2 and "hess needs an output with one element" in err
    code, out, err = invoke_jacli("grad", LINEAR, *AT, "--out", "s", "--wrt", "x")
    assert (code, out) == (0, "1.0 1.0 1.0\n")


def test_a_stray_huge_component_index_is_refused_at_once():
    import time
    start = time.perf_counter()
    with pytest.raises(ColumnError, match=r"up to 'x\[99999999\]' but no column 'x\[1\]'"):
        group_columns(["x[0]", "x[99999999]"], ["x"])
    with pytest.raises(ColumnError, match="at most 64 axes"):
        group_columns(["x" + "[0]" * 65], ["x"])
    assert time.perf_counter() - start < 1


def test_at_lists_nested_deeper_than_numpy_allows_are_refused():
    error = error_of(parse_at, ["x=" + "[" * 100_000 + "1" + "]" * 100_000])
    assert error.message == "the value of 'x' is nested deeper than 64 lists (NumPy's limit)"
    assert error.span == (2 + 64, 2 + 65)
    assert parse_at(["x=" + "[" * 64 + "1" + "]" * 64])["x"].shape == (1,) * 64

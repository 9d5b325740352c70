"""The batch runner (jacli/batch.py) through its Python face, Program.stream: a points
file streamed chunk by chunk, against hand-derived derivatives."""

from __future__ import annotations

import json

import numpy as np
import pytest

import jacli
from jacli.errors import JacliError

ROSENBROCK = "f = (a - x)^2 + b*(y - x^2)^2"


def rosenbrock_gradient(x, y, a=1.0, b=100.0):
    return np.stack([-2 * (a - x) - 4 * b * x * (y - x**2), 2 * b * (y - x**2)], axis=-1)


def test_stream_gives_each_rows_gradient_with_bad_rows_in_place(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("x,y\n1.2,1.0\n0.5,oops\n2,3.5\n-1,0.25\n")
    batch = jacli.compile(ROSENBROCK).stream(str(path), "grad", wrt=["x", "y"],
                                             at={"a": 1.0, "b": 100.0})
    chunks = list(batch)
    assert len(chunks) == 1 and chunks[0].first_row == 0
    (chunk,) = chunks
    assert list(chunk.bad_rows) == [1] and "oops" in chunk.bad_rows[1]
    x, y = np.array([1.2, 2.0, -1.0]), np.array([1.0, 3.5, 0.25])
    good = chunk.jacobian[[0, 2, 3], 0, :]
    np.testing.assert_allclose(good, rosenbrock_gradient(x, y), rtol=1e-14)
    assert np.isnan(chunk.jacobian[1]).all() and np.isnan(chunk.value[1]).all()
    np.testing.assert_allclose(chunk.value[[0, 2, 3], 0],
                               (1 - x)**2 + 100 * (y - x**2)**2, rtol=1e-14)


def test_stream_reads_a_long_file_in_chunks_numbered_by_row(tmp_path, monkeypatch):
    import jacli.batch

    monkeypatch.setattr(jacli.batch, "RESULT_FLOATS", 26)   # a row holds 1 + 1: 13 rows
    path = tmp_path / "p.csv"
    x = np.linspace(-1, 1, 30)
    path.write_text("x\n" + "".join(f"{float(v)!r}\n" for v in x))
    chunks = list(jacli.compile("sin(x)").stream(str(path), "eval"))
    assert [c.first_row for c in chunks] == [0, 13, 26]
    assert np.concatenate([c.value[:, 0] for c in chunks]).tolist() == np.sin(x).tolist()


def test_stream_of_arrays_from_json_lines_with_a_shared_matrix(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]]
    path.write_text("".join(json.dumps({"x": r}) + "\n" for r in rows))
    W = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    (chunk,) = jacli.compile("y = W @ x").stream(str(path), "jac", wrt=["x"], at={"W": W})
    assert chunk.outputs == ["y[0]", "y[1]", "y[2]"]
    np.testing.assert_array_equal(chunk.value, np.array(rows) @ W.T)
    np.testing.assert_array_equal(chunk.jacobian, np.broadcast_to(W, (3, 3, 2)))


def test_stream_jvp_and_vjp_take_their_seeds(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("x,y\n3,4\n1,2\n")
    program = jacli.compile("u = x*y; v = x + 2*y")
    (jvp,) = program.stream(str(path), "jvp", tangent={"x": 1.0})
    np.testing.assert_array_equal(jvp.jvp, [[4.0, 1.0], [2.0, 1.0]])   # (y, 1)
    (vjp,) = program.stream(str(path), "vjp", cotangent={"v": 1.0})
    np.testing.assert_array_equal(vjp.vjp, [[1.0, 2.0], [1.0, 2.0]])


def test_stream_refuses_what_it_cannot_stream(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("x\n1\n")
    program = jacli.compile("x^2")
    with pytest.raises(JacliError, match="unknown command 'tape'"):
        program.stream(str(path), "tape")
    with pytest.raises(JacliError, match="jvp needs --tangent"):
        program.stream(str(path), "jvp")
    with pytest.raises(JacliError, match="'z' is not used by the program"):
        program.stream(str(path), "grad", at={"z": 1.0})

"""Sparsity patterns, colourings and the compressed Jacobian (jacli/sparsity.py,
jacli/colouring.py, engine.compressed) and their commands (`jacli sparsity`, `--sparse`).

References: central differences of `eval` (independent of the pattern code) for the
numerical nonzeros; brute-force checks of the colourings' conditions; the dense sweeps
of the same mode for the compressed Jacobian's bits."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

import jacli
from jacli.colouring import Colouring, colourings, distance2, hessian_colouring, sources, star
from jacli.sparsity import Sparsity

from conftest import invoke_jacli as _run


class _Done:
    def __init__(self, done):
        self.returncode, self.stdout, self.stderr = done


def run_jacli(*args):
    return _Done(_run(*args))

RNG = np.random.default_rng(15)

ROSENBROCK = "sum(100*(x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2)"

# Programs without cancellation: their structural pattern is exactly the nonzeros of the
# Jacobian at random points. (program, shapes of the variables)
EXACT = [
    ("exp(x)*sin(x)", {"x": (7,)}),                                   # elementwise
    ("x[1:] - x[:-1]^2", {"x": (6,)}),                                # banded
    ("x[2:]*x[:-2] + cos(x[1:-1])", {"x": (7,)}),                     # banded, width 3
    ("[sum(x[0:3]^2), sum(x[3:6]^3), x[6]*y]", {"x": (7,), "y": ()}),  # blocks
    ("y = A @ x", {"A": (3, 4), "x": (4,)}),                          # @: dense in x, rows of A
    ("A @ B", {"A": (2, 3), "B": (3, 2)}),                            # matrix product
    ("outer(x, y)", {"x": (3,), "y": (2,)}),
    ("transpose(A) * 2", {"A": (2, 3)}),
    ("sum(A^2, axis=0)", {"A": (3, 4)}),
    ("softmax(A, axis=1)", {"A": (2, 3)}),
    ("diag(exp(x))", {"x": (3,)}),
    ("trace(A @ A)", {"A": (3, 3)}),
    ("inv(A)", {"A": (3, 3)}),
    ("det(A) + x", {"A": (2, 2), "x": (3,)}),
    ("solve(A, b)", {"A": (3, 3), "b": (3,)}),
    ("dot(x, x)*x[0]", {"x": (4,)}),
    ("norm(x[1:]) + logsumexp(x[:2])", {"x": (4,)}),
    ("u = x^2 + y; v = [x[1], y]", {"x": (3,), "y": ()}),            # two outputs
]
# Programs whose nonzeros may cancel or vanish: the pattern is a superset.
SUPERSET = [
    ("x[1:] - x[1:] + x[:-1]", {"x": (5,)}),
    ("x*0 + sign(x)*y", {"x": (4,), "y": ()}),
    ("relu(x) + abs(x[0])", {"x": (4,)}),
    ("max(x) + x*y", {"x": (4,), "y": ()}),   # max depends on its argmax only
] + EXACT


def _point(shapes):
    # well inside every domain used above: positive-definite-ish matrices, no ties
    point = {}
    for name, shape in shapes.items():
        value = RNG.uniform(0.5, 1.5, shape)
        if len(shape) == 2 and shape[0] == shape[1]:
            value = value + 3 * np.eye(shape[0])
        point[name] = value
    return point


def _differences(program: jacli.Program, point: dict, step: float = 1e-6) -> np.ndarray:
    """The Jacobian by central differences of eval, over components."""
    names = program.variables
    flat = np.concatenate([np.ravel(point[n]) for n in names])
    sizes = [np.size(point[n]) for n in names]

    def values(v):
        at, start = {}, 0
        for name, size in zip(names, sizes):
            at[name] = v[start:start + size].reshape(np.shape(point[name]))
            start += size
        return program.eval(at, batch=False).value
    columns = []
    for k in range(len(flat)):
        e = np.zeros_like(flat)
        e[k] = step
        columns.append((values(flat + e) - values(flat - e)) / (2 * step))
    return np.stack(columns, axis=-1)


def _pattern(source, shapes, hessian=False):
    program = jacli.compile(source)
    return program, program.sparsity(shapes, hessian=hessian)


@pytest.mark.parametrize("source,shapes", EXACT, ids=[s for s, _ in EXACT])
def test_pattern_equals_the_numerical_nonzeros_without_cancellation(source, shapes):
    program, structure = _pattern(source, shapes)
    for _ in range(2):
        numerical = np.abs(_differences(program, _point(shapes))) > 1e-7
        assert np.array_equal(structure.pattern.dense(), numerical)


@pytest.mark.parametrize("source,shapes", SUPERSET, ids=[s for s, _ in SUPERSET])
def test_pattern_is_a_superset_of_the_numerical_nonzeros(source, shapes):
    program, structure = _pattern(source, shapes)
    point = _point(shapes)
    point = {k: v * RNG.choice([-1, 1], np.shape(v)) for k, v in point.items()}
    numerical = np.abs(_differences(program, point)) > 1e-7
    assert not (numerical & ~structure.pattern.dense()).any()


def test_pattern_drops_what_cancels_only_where_the_rule_is_exactly_zero():
    # sign(x) has a zero partial: nothing of x passes through it, the rest does
    _, structure = _pattern("sign(x)*y + x[0]", {"x": (3,), "y": ()})
    assert structure.pattern.dense().astype(int).tolist() == [[1, 0, 0, 1]] * 3


def test_hessian_pattern_of_chained_rosenbrock_is_tridiagonal_with_three_colours():
    program, structure = _pattern(ROSENBROCK, {"x": (50,)}, hessian=True)
    i, j = np.indices((50, 50))
    assert np.array_equal(structure.pattern.dense(), np.abs(i - j) <= 1)
    assert structure.hessian <= 3 and structure.forward == 3 and structure.reverse == 3


@pytest.mark.parametrize("source,shapes", [
    (ROSENBROCK, {"x": (6,)}), ("sum(exp(x)*x[0]) + sum(x[1:]*x[:-1])", {"x": (5,)}),
    ("sum(A @ x * x)", {"A": (3, 3), "x": (3,)})])
def test_hessian_pattern_covers_the_hessians_nonzeros(source, shapes):
    program, structure = _pattern(source, shapes, hessian=True)
    point = _point(shapes)
    dense = program.hessian(point, batch=False, colour=False).hessian
    assert not ((dense != 0) & ~structure.pattern.dense()).any()


# --- colourings ---------------------------------------------------------------------------

def _random_pattern(m, n, density):
    mask = RNG.random((m, n)) < density
    rows, cols = np.nonzero(mask)
    return Sparsity(rows, cols, (m, n)), mask


@pytest.mark.parametrize("m,n,density", [(30, 40, 0.05), (40, 30, 0.15), (10, 10, 0.5),
                                         (1, 8, 0.5), (8, 1, 0.5)])
def test_distance2_colourings_give_no_two_columns_or_rows_of_one_colour_a_common_entry(
        m, n, density):
    pattern, mask = _random_pattern(m, n, density)
    forward, reverse = colourings(pattern)
    for colours, matrix in ((forward.colours, mask), (reverse.colours, mask.T)):
        for colour in set(colours.tolist()):
            members = matrix[:, colours == colour]
            assert members.sum(axis=1).max(initial=0) <= 1
    # and none is more than the dense count
    assert forward.count <= n and reverse.count <= m


def test_distance2_colours_a_diagonal_with_one_colour_and_a_band_with_its_width():
    n = 20
    ids = np.arange(n)
    assert distance2(ids, ids, n, n).max() == 0
    rows = np.concatenate([ids, ids[1:], ids[:-1]])
    cols = np.concatenate([ids, ids[:-1], ids[1:]])
    assert distance2(rows, cols, n, n).max() + 1 == 3


def _symmetric(n, density):
    upper = np.triu(RNG.random((n, n)) < density, 1)
    mask = upper | upper.T | np.eye(n, dtype=bool)
    rows, cols = np.nonzero(mask)
    return Sparsity(rows, cols, (n, n)), mask


@pytest.mark.parametrize("n,density", [(12, 0.2), (20, 0.1), (15, 0.35), (6, 1.0)])
def test_star_colouring_is_proper_and_colours_every_path_of_four_with_three(n, density):
    pattern, mask = _symmetric(n, density)
    colour = star(pattern.rows, pattern.cols, n)
    adjacent = mask & ~np.eye(n, dtype=bool)
    edges = list(zip(*np.nonzero(adjacent)))
    assert all(colour[a] != colour[b] for a, b in edges)
    neighbours = [np.flatnonzero(adjacent[v]).tolist() for v in range(n)]
    for a, b in edges:
        for c in neighbours[b]:
            if c == a:
                continue
            for d in neighbours[c]:
                if d in (a, b):
                    continue
                # a-b-c-d is a path: two colours only would be a bicoloured P4
                assert len({colour[a], colour[b], colour[c], colour[d]}) >= 3


@pytest.mark.parametrize("n,density", [(12, 0.2), (25, 0.1), (15, 0.35)])
def test_a_symmetric_matrix_is_recovered_from_its_star_compressed_rows(n, density):
    pattern, mask = _symmetric(n, density)
    values = RNG.normal(size=(n, n))
    h = np.where(mask, values + values.T, 0.0)
    colour = star(pattern.rows, pattern.cols, n)
    colouring = Colouring("reverse", colour, int(colour.max()) + 1, True)
    compressed = np.stack([h[colour == c].sum(axis=0) for c in range(colouring.count)])
    at_colour, at_index = sources(pattern, colouring)
    assert np.array_equal(compressed[at_colour, at_index], h[pattern.rows, pattern.cols])


def test_hessian_colouring_takes_star_when_it_is_fewer_colours():
    # an arrowhead: distance-2 needs n colours, a star colouring two
    n = 8
    rows = np.concatenate([np.zeros(n, int), np.arange(1, n), np.arange(1, n)])
    cols = np.concatenate([np.arange(n), np.zeros(n - 1, int), np.arange(1, n)])
    order = np.lexsort((cols, rows))
    pattern = Sparsity(rows[order], cols[order], (n, n))
    colouring = hessian_colouring(pattern)
    assert colouring.symmetric and colouring.count == 2


# --- the compressed Jacobian --------------------------------------------------------------

COLOURED = [
    ("exp(x)*sin(x)", {"x": (40,)}),
    ("x[1:] - x[:-1]^2", {"x": (30,)}),
    ("x[2:]*x[:-2] + cos(x[1:-1])", {"x": (30,)}),
    ("[sum(x[0:3]^2), sum(x[3:6]^3), x[6]*y]", {"x": (7,), "y": ()}),
    ("u = x^2 + y; v = sqrt(x)", {"x": (20,), "y": ()}),
    ("transpose(A) * 2 + A[0, 0]", {"A": (4, 5)}),
]


@pytest.mark.parametrize("source,shapes", COLOURED, ids=[s for s, _ in COLOURED])
def test_compressed_jacobian_equals_the_dense_sweeps_bit_for_bit(source, shapes):
    program = jacli.compile(source)
    structure = program.sparsity(shapes)
    m, n = structure.pattern.shape
    assert min(structure.forward, structure.reverse) < min(m, n)   # colouring is used
    mode = "forward" if structure.forward <= structure.reverse else "reverse"
    points = {k: RNG.uniform(0.5, 2.0, (3,) + s) for k, s in shapes.items()}
    coloured = program.jacobian(points, mode="auto", batch=True).jacobian
    dense = program.jacobian(points, mode=mode, batch=True).jacobian
    rows, cols = structure.pattern.rows, structure.pattern.cols
    assert np.array_equal(coloured[:, rows, cols], dense[:, rows, cols])
    outside = ~structure.pattern.dense()
    assert not coloured[:, outside].any()


def test_auto_mode_sweeps_once_per_colour(monkeypatch):
    import jacli.engine as engine

    seen = []
    sweep = engine.forward_sweep

    def counting(tape, partials, seeds, *args, **kwargs):
        seen.append({np.shape(s)[0] for s in seeds.values()})
        return sweep(tape, partials, seeds, *args, **kwargs)
    monkeypatch.setattr(engine, "forward_sweep", counting)
    program = jacli.compile("exp(x)*sin(x)")
    x = RNG.normal(size=500)
    result = program.jacobian({"x": x}, mode="auto", batch=False)
    assert seen == [{1}]   # one sweep of one direction, not 500
    assert np.allclose(np.diag(result.jacobian), np.exp(x) * (np.sin(x) + np.cos(x)))
    assert np.count_nonzero(result.jacobian) == 500


def test_structural_zeros_stay_exact_where_a_partial_is_infinite():
    program = jacli.compile("sqrt(x)")
    result = program.jacobian({"x": np.array([0.0, 4.0, 1.0])}, mode="auto", batch=False)
    assert result.jacobian[0, 0] == np.inf
    assert np.array_equal(result.jacobian[1:, 1:], np.diag([0.25, 0.5]))
    assert np.count_nonzero(result.jacobian) == 3 and not np.isnan(result.jacobian).any()


@pytest.mark.parametrize("source,shapes", [
    (ROSENBROCK, {"x": (40,)}), ("sum(exp(x[1:])*x[:-1]) + sum(x^4)", {"x": (25,)}),
    ("sum(x[2:]*x[:-2]*y)", {"x": (20,), "y": ()}),
    ("sum(x[0]*x) + sum(x^3)", {"x": (10,)})])   # an arrowhead: a star colouring
def test_compressed_hessian_equals_the_dense_one(source, shapes):
    program = jacli.compile(source)
    points = {k: RNG.uniform(0.5, 2.0, (2,) + s) for k, s in shapes.items()}
    coloured = program.hessian(points, batch=True)
    dense = program.hessian(points, batch=True, colour=False)
    structure = program.sparsity(shapes, hessian=True)
    assert structure.hessian < structure.pattern.shape[0]
    assert np.array_equal(coloured.value, dense.value)
    assert np.array_equal(coloured.jacobian, dense.jacobian)
    h, d = coloured.hessian, dense.hessian
    # each entry as the dense sweep computed it (or its mirror, for a star colouring)
    assert ((h == d) | (h == d.transpose(0, 2, 1))).all()
    assert not h[:, ~structure.pattern.dense()].any()


def test_sparse_api_gives_the_nonzeros_in_pattern_order():
    program = jacli.compile("x[1:] - x[:-1]^2")
    x = RNG.normal(size=(4, 6))
    sparse = program.jacobian({"x": x}, mode="auto", batch=True, sparse=True)
    dense = program.jacobian({"x": x}, mode="forward", batch=True)
    pattern = sparse.sparsity
    assert sparse.jacobian is None and sparse.nonzeros.shape == (4, pattern.nnz)
    assert np.array_equal(sparse.nonzeros, dense.jacobian[:, pattern.rows, pattern.cols])
    # by hand: row i is -2 x[i] at column i and 1 at column i + 1
    assert np.array_equal(pattern.rows, np.repeat(np.arange(5), 2))
    assert np.array_equal(sparse.nonzeros[:, 1::2], np.ones((4, 5)))
    assert np.array_equal(sparse.nonzeros[:, 0::2], -2 * x[:, :5])


# --- the commands -------------------------------------------------------------------------

def test_sparsity_plain_is_one_line_of_zeros_and_ones_per_row():
    done = run_jacli("sparsity", "x[1:] - x[:-1]^2", "--shape", "x=4")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "1100\n0110\n0011\n"


def test_sparsity_json_gives_coo_indices_and_colour_counts():
    done = run_jacli("sparsity", "y = A @ x; z = x^2", "--at", "x=[1,2]", "--shape",
                     "A=3x2", "--wrt", "x", "--format", "json")
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["shape"] == [5, 2] and got["nnz"] == 8
    assert list(zip(got["rows"], got["cols"])) == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0),
                                                   (2, 1), (3, 0), (4, 1)]
    # forward: a full row needs both columns; reverse: y's rows are dense in x, z's
    # two rows share no column: 3 + 1
    assert got["colours"] == {"forward": 2, "reverse": 4}
    assert got["row_names"] == ["y[0]", "y[1]", "y[2]", "z[0]", "z[1]"]


def test_sparsity_table_names_rows_and_columns_and_counts_the_colours():
    done = run_jacli("sparsity", ROSENBROCK, "--shape", "x=4", "--hessian", "--format",
                     "table")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["x[0]", "x[1]", "x[2]", "x[3]"]
    assert lines[1].split() == ["x[0]", "●", "●", "·", "·"]
    assert lines[4].split() == ["x[3]", "·", "·", "●", "●"]
    assert "nonzeros: 10 of 4 x 4" in done.stdout
    assert "forward: 3 colours instead of 4; reverse: 3 instead of 4" in done.stdout


def test_sparsity_folds_a_large_pattern_into_blocks():
    done = run_jacli("sparsity", "exp(x)", "--shape", "x=1000", "--format", "table")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) < 50 and "each mark: a block" in done.stdout
    assert "forward: 1 colour instead of 1000; reverse: 1 instead of 1000" in done.stdout


def test_jac_sparse_json_and_csv_hold_the_nonzeros_of_the_dense_jacobian():
    args = ["x[1:] * x[:-1]", "--at", "x=[1,2,3]"]
    dense = json.loads(run_jacli("jac", *args, "--format", "json").stdout)
    done = run_jacli("jac", *args, "--sparse", "--format", "json")
    assert done.returncode == 0, done.stderr
    sparse = json.loads(done.stdout)
    assert sparse["shape"] == [2, 3]
    assert sparse["values"] == [dense["jacobian"][i][j]
                                for i, j in zip(sparse["rows"], sparse["cols"])]
    assert sparse["values"] == [2.0, 1.0, 3.0, 2.0]   # by hand: x[i+1], x[i]
    csv = run_jacli("jac", *args, "--sparse", "--format", "csv").stdout.splitlines()
    assert csv[0] == ("x[0],x[1],x[2],f1[0],f1[1],df1[0]/dx[0],df1[0]/dx[1],"
                      "df1[1]/dx[1],df1[1]/dx[2]")
    assert csv[1] == "1.0,2.0,3.0,2.0,6.0,2.0,1.0,3.0,2.0"


def test_hess_sparse_json_holds_the_tridiagonal_entries():
    done = run_jacli("hess", ROSENBROCK, "--at", "x=[1,2,3]", "--sparse", "--format", "json")
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    x = np.array([1.0, 2.0, 3.0])
    # by hand: d2/dx_i^2 and d2/dx_i dx_{i+1} of 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2
    h = np.zeros((3, 3))
    for i in range(2):
        h[i, i] += 1200 * x[i] ** 2 - 400 * x[i + 1] + 2
        h[i + 1, i + 1] += 200
        h[i, i + 1] += -400 * x[i]
        h[i + 1, i] += -400 * x[i]
    assert got["rows"] == [0, 0, 1, 1, 1, 2, 2] and got["cols"] == [0, 1, 0, 1, 2, 1, 2]
    assert got["values"] == [h[i, j] for i, j in zip(got["rows"], got["cols"])]


def test_jac_sparse_npz_of_one_point_is_what_scipy_load_npz_reads(tmp_path):
    sparse = pytest.importorskip("scipy.sparse")
    path = tmp_path / "J.npz"
    done = run_jacli("jac", "exp(x)*sin(x)", "--at", "x=[1,2,3]", "--sparse", "-o", str(path))
    assert done.returncode == 0, done.stderr
    x = np.array([1.0, 2.0, 3.0])
    matrix = sparse.load_npz(path)
    assert matrix.shape == (3, 3) and matrix.nnz == 3
    assert np.allclose(matrix.toarray(), np.diag(np.exp(x) * (np.sin(x) + np.cos(x))),
                       rtol=1e-15)


def test_jac_sparse_npz_of_many_points_holds_the_pattern_and_a_values_array(tmp_path):
    points = tmp_path / "points.csv"
    points.write_text("x,y\n1,2\n3,4\n")
    path = tmp_path / "J.npz"
    done = run_jacli("jac", "u = x*y; v = y^2", "--points", str(points), "--sparse",
                     "-o", str(path))
    assert done.returncode == 0, done.stderr
    with np.load(path) as saved:
        assert "format" not in saved
        assert saved["row"].tolist() == [0, 0, 1] and saved["col"].tolist() == [0, 1, 1]
        assert saved["shape"].tolist() == [2, 2]
        assert saved["values"].tolist() == [[2.0, 1.0, 4.0], [4.0, 3.0, 8.0]]

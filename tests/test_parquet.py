"""Parquet points in and results out (issue 14, item 3): files, directories and globs read
in record batches; list columns and component columns as array variables; nulls as bad
rows; `-o out.parquet` with the columns of CSV output, written safely; a clear message
when pyarrow is missing; pyarrow never loaded by a run that does not need it.

Every expected value is written out by hand (x^2*y: 2xy, x^2) or computed here with
NumPy; files are made and read back with pyarrow directly, never through jacli.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, _env, invoke_jacli, run_jacli

try:
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError:   # the last two tests run without it; the others are skipped
    pa = pq = None

from jacli.errors import JacliError  # noqa: E402
from jacli.points import PointsReader  # noqa: E402


def write(path, columns: dict, **options) -> str:
    pq.write_table(pa.table(columns), path, **options)
    return str(path)


def read(path) -> dict:
    """A Parquet file's columns in order, nulls as None."""
    table = pq.read_table(path)
    return {name: table.column(name).to_pylist() for name in table.column_names}


def reader(path, wanted, required=None, shapes=None) -> PointsReader:
    return PointsReader(str(path), None, wanted, wanted if required is None else required,
                        [], shapes=shapes)


def same(a, b) -> bool:
    """Equal lists of numbers, None and nan compared as themselves."""
    return len(a) == len(b) and all(
        x is y or (x is not None and y is not None and (x == y or math.isnan(x) and
                                                        math.isnan(y))) for x, y in zip(a, b))


# --- reading -----------------------------------------------------------------------------

def test_scalar_columns_of_any_numeric_type_feed_the_variables(tmp_path):
    path = write(tmp_path / "p.parquet", {
        "id": ["a", "b", "c"],                               # not a variable: ignored
        "x": pa.array([1.0, 2.0, -3.0], pa.float32()),
        "y": pa.array([2, 5, 7], pa.int16())})
    code, out, err = invoke_jacli("grad", "f = x^2*y", "--points", path, "--format", "csv")
    assert (code, err) == (0, "")
    assert out.splitlines() == ["x,y,f,df/dx,df/dy",     # f = x^2*y: 2xy, x^2
                                "1.0,2.0,2.0,4.0,1.0",
                                "2.0,5.0,20.0,20.0,4.0",
                                "-3.0,7.0,63.0,-42.0,9.0"]


def test_a_null_is_a_bad_row_named_and_a_nan_is_a_number(tmp_path):
    path = write(tmp_path / "p.parquet", {"x": [1.0, None, float("nan"), 4.0],
                                          "y": [1.0, 1.0, 1.0, None]})
    code, out, err = invoke_jacli("eval", "x + y", "--points", path, "--format", "csv")
    assert code == 1
    assert out.splitlines() == ["x,y,f1", "1.0,1.0,2.0", "nan,nan,nan", "nan,1.0,nan",
                                "nan,nan,nan"]
    assert err.splitlines() == ["jacli: row 2: the value of 'x' is missing (null)",
                                "jacli: row 4: the value of 'y' is missing (null)",
                                "jacli: 2 of 4 rows failed; 2 evaluated"]


def test_a_list_column_feeds_an_array_variable(tmp_path):
    rows = [[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]]
    for kind in (pa.list_(pa.float64()), pa.large_list(pa.float64()),
                 pa.list_(pa.float64(), 3)):
        path = write(tmp_path / "p.parquet", {"x": pa.array(rows, kind), "c": [2.0, 3.0]})
        code, out, err = invoke_jacli("grad", "f = c*sum(x^2)", "--wrt", "x", "--points", path,
                                      "--format", "csv")
        assert (code, err) == (0, ""), kind
        header, *lines = out.splitlines()
        assert header == "c,x[0],x[1],x[2],f,df/dx[0],df/dx[1],df/dx[2]"   # program order
        table = np.array([[float(v) for v in line.split(",")] for line in lines])
        x, c = np.array(rows), np.array([2.0, 3.0])
        want = np.column_stack([c, x, c * (x ** 2).sum(1), 2 * c[:, None] * x])
        assert np.array_equal(table, want), kind


def test_a_nested_list_column_feeds_a_matrix(tmp_path):
    W = [[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], [[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]]
    path = write(tmp_path / "p.parquet", {"W": W})
    chunk = next(reader(path, ["W"]).chunks())
    assert chunk.columns["W"].shape == (2, 2, 3)
    assert np.array_equal(chunk.columns["W"], np.array(W)) and chunk.bad_rows == {}


def test_list_rows_of_another_shape_or_with_nulls_are_bad_alone(tmp_path):
    path = write(tmp_path / "p.parquet", {"x": [[1.0, 2.0], [3.0], None, [4.0, None], [],
                                                [5.0, 6.0]]})
    chunk = next(reader(path, ["x"]).chunks())
    assert chunk.bad_rows == {1: "the value of 'x' has shape (1,); the first row's (2,)",
                              2: "the value of 'x' is missing (null)",
                              3: "the value of 'x' has a missing (null) element",
                              4: "the value of 'x' has an empty list"}
    assert np.array_equal(chunk.columns["x"][[0, 5]], [[1.0, 2.0], [5.0, 6.0]])


def test_a_ragged_matrix_row_is_bad_and_the_next_is_read(tmp_path):
    path = write(tmp_path / "p.parquet", {"W": [[[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0]],
                                                [[5.0, 6.0], [7.0, 8.0]]]})
    chunk = next(reader(path, ["W"]).chunks())
    assert list(chunk.bad_rows) == [1] and "ragged" in chunk.bad_rows[1]
    assert np.array_equal(chunk.columns["W"][2], [[5.0, 6.0], [7.0, 8.0]])


def test_component_columns_make_an_array_as_in_csv(tmp_path):
    path = write(tmp_path / "p.parquet", {"x[1]": [2.0, 20.0], "x[0]": [1.0, 10.0],
                                          "b": [0.5, 0.25]})
    chunk = next(reader(path, ["x", "b"]).chunks())
    assert np.array_equal(chunk.columns["x"], [[1.0, 2.0], [10.0, 20.0]])


def test_shape_option_must_agree_with_the_columns(tmp_path):
    path = write(tmp_path / "p.parquet", {"x": pa.array([[1.0, 2.0]], pa.list_(pa.float64(), 2))})
    with pytest.raises(JacliError) as caught:
        reader(path, ["x"], shapes={"x": (3,)})
    assert caught.value.message == f"{path} gives 'x' the shape (2,); --shape says (3,)"
    chunk = next(reader(path, ["x"], shapes={"x": (2,)}).chunks())
    assert np.array_equal(chunk.columns["x"], [[1.0, 2.0]])


@pytest.mark.parametrize("columns, message", [
    ({"x": ["1", "2"]}, "the column 'x' of {path} holds string, not numbers"),
    ({"y": [1.0, 2.0]}, "no value for 'x': {path} has the columns y"),
    ({"x": [[["a"]]]}, "the column 'x' of {path} holds string, not numbers"),
])
def test_columns_that_cannot_be_read_exit_2_before_any_row(tmp_path, columns, message):
    path = write(tmp_path / "p.parquet", columns)
    code, out, err = invoke_jacli("eval", "x + 1", "--points", path)
    assert (code, out) == (2, "")
    assert err == f"jacli: error: --points: {message.format(path=path)}\n"


def test_not_a_parquet_file_stdin_and_columns_are_refused(tmp_path):
    fake = tmp_path / "p.parquet"
    fake.write_text("x\n1\n")
    code, _, err = invoke_jacli("eval", "x", "--points", str(fake))
    assert code == 2 and err.startswith(f"jacli: error: --points: {fake} is not a Parquet file")
    path = write(tmp_path / "q.parquet", {"x": [1.0]})
    code, _, err = run_jacli("eval", "x", "--points", "-", input=open(path, "rb").read())
    assert code == 2 and "cannot be read from standard input" in err
    code, _, err = invoke_jacli("eval", "x", "--points", path, "--columns", "x")
    assert code == 2 and "Parquet points name their own columns" in err


def test_a_parquet_file_is_told_by_its_first_bytes(tmp_path):
    path = write(tmp_path / "points.data", {"x": [3.0]})
    assert invoke_jacli("grad", "x^2", "--points", path) == (0, "6.0\n", "")


def test_a_directory_or_a_glob_is_read_file_by_file_in_natural_order(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for part in range(12):   # part.10 after part.9, not after part.1
        write(folder / f"part.{part}.parquet", {"x": [float(2 * part), float(2 * part + 1)]})
    (folder / "_SUCCESS").write_text("")
    (folder / ".part.3.parquet.crc").write_text("not parquet")
    for source in (folder, folder / "part.*.parquet"):
        code, out, err = invoke_jacli("eval", "x/2", "--points", str(source))
        assert (code, err) == (0, "")
        assert out.split() == [str(i / 2) for i in range(24)]


def test_a_bad_row_of_one_of_several_files_names_its_file(tmp_path):
    write(tmp_path / "a.parquet", {"x": [1.0, 2.0]})
    write(tmp_path / "b.parquet", {"x": [3.0, None, 5.0]})
    code, out, err = invoke_jacli("eval", "x", "--points", str(tmp_path / "*.parquet"))
    assert code == 1 and out.split() == ["1.0", "2.0", "3.0", "nan", "5.0"]
    assert err.splitlines()[0] == (f"jacli: row 4: the value of 'x' is missing (null) "
                                   f"(row 2 of {tmp_path / 'b.parquet'})")


def test_files_that_give_a_variable_other_shapes_are_refused(tmp_path):
    write(tmp_path / "a.parquet", {"x[0]": [1.0], "x[1]": [2.0]})
    write(tmp_path / "b.parquet", {"x": pa.array([[1.0, 2.0, 3.0]], pa.list_(pa.float64(), 3))})
    code, _, err = invoke_jacli("eval", "sum(x)", "--points", str(tmp_path))
    assert code == 2
    assert err == (f"jacli: error: --points: {tmp_path / 'b.parquet'} gives 'x' the shape (3,); "
                   f"{tmp_path / 'a.parquet'} gives (2,)\n")


def test_an_empty_directory_or_glob_is_an_error(tmp_path):
    assert invoke_jacli("eval", "x", "--points", str(tmp_path))[2] == (
        f"jacli: error: --points: the directory {tmp_path} holds no .parquet files\n")
    assert invoke_jacli("eval", "x", "--points", str(tmp_path / "*.parquet"))[2] == (
        f"jacli: error: --points: no file matches {tmp_path / '*.parquet'}\n")


def test_many_small_record_batches_are_read_in_bounded_chunks(tmp_path):
    rows = 400_000
    x = np.arange(rows, dtype=float)
    path = write(tmp_path / "p.parquet", {"x": x, "y": -x, "unused": x}, row_group_size=1000)
    assert pq.ParquetFile(path).metadata.num_row_groups == 400
    points = reader(path, ["x", "y"])
    before, peak, seen, sizes = pa.total_allocated_bytes(), 0, [], []
    for chunk in points.chunks(10_000):
        peak = max(peak, pa.total_allocated_bytes() - before)
        sizes.append(chunk.count)
        seen.append(chunk.columns["x"][[0, -1]])
        assert np.array_equal(chunk.columns["y"], -chunk.columns["x"])
        assert chunk.first_row == chunk.columns["x"][0]
    assert sizes == [10_000] * 40
    assert np.array_equal(np.concatenate(seen), np.repeat(np.arange(0, rows, 10_000), 2)
                          + np.tile([0, 9_999], 40))
    # The whole of x and y is 6.4 MB decoded; a chunk of both is 160 kB.
    assert peak < 1_500_000, peak


# --- writing -----------------------------------------------------------------------------

def test_output_has_the_columns_of_csv_and_the_values(tmp_path):
    points = write(tmp_path / "p.parquet", {"x": [1.0, 2.0, 3.0], "y": [2.0, 5.0, None]})
    out = tmp_path / "out.parquet"
    code, _, err = invoke_jacli("grad", "f = x^2*y", "--points", points, "-o", str(out))
    assert code == 1 and err.splitlines()[0] == "jacli: row 3: the value of 'y' is missing (null)"
    schema = pq.read_schema(out)
    assert schema.names == ["x", "y", "f", "df/dx", "df/dy"]
    assert all(field.type == pa.float64() for field in schema)
    assert read(out) == {"x": [1.0, 2.0, None], "y": [2.0, 5.0, None], "f": [2.0, 20.0, None],
                         "df/dx": [4.0, 20.0, None], "df/dy": [1.0, 4.0, None]}


def test_array_results_are_written_one_column_per_component(tmp_path):
    points = write(tmp_path / "p.parquet", {"x": [[1.0, 2.0], [3.0, -1.0]]})
    out = tmp_path / "out.parquet"
    code, _, err = invoke_jacli("jac", "y = x^2; s = sum(x)", "--points", points, "-o", str(out))
    assert (code, err) == (0, "")
    assert read(out) == {
        "x[0]": [1.0, 3.0], "x[1]": [2.0, -1.0],
        "y[0]": [1.0, 9.0], "y[1]": [4.0, 1.0], "s": [3.0, 2.0],
        "dy[0]/dx[0]": [2.0, 6.0], "dy[0]/dx[1]": [0.0, 0.0],
        "dy[1]/dx[0]": [0.0, 0.0], "dy[1]/dx[1]": [4.0, -2.0],
        "ds/dx[0]": [1.0, 1.0], "ds/dx[1]": [1.0, 1.0]}
    # The columns are those of CSV output, in its order.
    csv_header = invoke_jacli("jac", "y = x^2; s = sum(x)", "--points", points,
                              "--format", "csv")[1].splitlines()[0]
    assert pq.read_schema(out).names == csv_header.split(",")


def test_a_round_trip_keeps_values_arrays_and_bad_rows(tmp_path):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(50, 3))
    x_list = x.tolist()
    x_list[17] = None
    c = rng.normal(size=50)
    first = write(tmp_path / "p.parquet", {"x": pa.array(x_list, pa.list_(pa.float64(), 3)),
                                           "c": c})
    middle, last = tmp_path / "values.parquet", tmp_path / "again.parquet"
    code, _, err = invoke_jacli("eval", "y = c*x", "--points", first, "-o", str(middle))
    assert code == 1 and err.startswith("jacli: row 18: the value of 'x' is missing (null)\n")
    # The output's columns c, x[0..2], y[0..2] read back as points (x and y from their
    # components); row 18 is null in every column, so it is bad again.
    code, _, err = invoke_jacli("eval", "z = sum(y) - sum(x)*c", "--points", str(middle),
                                "-o", str(last))
    assert code == 1 and err.startswith("jacli: row 18: the value of 'c' is missing (null)\n")
    got = read(last)
    assert list(got) == ["y[0]", "y[1]", "y[2]", "x[0]", "x[1]", "x[2]", "c", "z"]
    for j in range(3):
        want = x[:, j].tolist()
        want[17] = None
        assert same(got[f"x[{j}]"], want)
    z = np.array([v if v is not None else np.nan for v in got["z"]])
    assert got["z"][17] is None
    assert np.allclose(np.delete(z, 17), 0.0, atol=1e-12)


def report(first: int, count: int, bad: dict | None = None):
    """The Report of `eval 2*x` over x = first, ..., first + count - 1."""
    from jacli.formats import Report

    x = np.arange(first, first + count, dtype=float)[:, None]
    return Report("eval", [], ["f1"], ["x"], x, 2 * x, None, bad or {}, None, None, None, first)


def test_small_chunks_are_gathered_into_row_groups():
    import io

    from jacli.formats import ParquetWriter

    for floats, groups in ((ParquetWriter.ROW_GROUP_FLOATS, 1), (400, 5)):
        buffer = io.BytesIO()
        writer = ParquetWriter("out.parquet")
        writer.ROW_GROUP_FLOATS = floats
        with writer.into(buffer):
            for first in range(0, 1000, 10):   # 100 chunks of 10 rows, as a pipe gives
                writer.write(report(first, 10, {3: "bad"} if first == 50 else None))
        file = pq.ParquetFile(io.BytesIO(buffer.getvalue()))
        assert file.metadata.num_row_groups == groups   # 2,000 numbers: 400 at a time
        got = file.read().to_pydict()
        want = [float(i) for i in range(1000)]
        want[53] = None
        assert got == {"x": want, "f1": [v and 2 * v for v in want]}


def test_a_run_that_fails_midway_leaves_the_old_file_and_no_other(tmp_path):
    out = tmp_path / "out.parquet"
    out.write_bytes(b"old")
    # An .npy from a pipe that ends after 70,000 of its 100,000 rows: the first chunk of
    # 65,536 is computed before the end is seen.
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.arange(200_000, dtype=float).reshape(100_000, 2))
    cut = buffer.getvalue()[:128 + 70_000 * 16]
    code, _, err = run_jacli("grad", "x*y", "--points", "-", "--points-format", "npy",
                             "-o", str(out), input=cut)
    assert code == 2 and "ends after 70,000 rows" in err
    assert out.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["out.parquet"]


def test_a_text_format_cannot_be_written_to_a_parquet_file(tmp_path):
    code, _, err = invoke_jacli("eval", "x", "--at", "x=1", "-o", str(tmp_path / "o.parquet"),
                                "--format", "csv")
    assert code == 2 and "o.parquet is a Parquet file: --format csv cannot be written" in err
    code, _, err = invoke_jacli("tape", "x*y", "-o", str(tmp_path / "o.parquet"))
    assert code == 2 and "the tape is text" in err


# --- without pyarrow ---------------------------------------------------------------------

def without_pyarrow(*args: str) -> subprocess.CompletedProcess:
    """jacli ARGS in a Python where `import pyarrow` fails, as where it is not installed."""
    code = ("import sys\nsys.modules['pyarrow'] = None\n"
            f"sys.argv = ['jacli'] + {list(map(str, args))!r}\n"
            "from jacli.cli import main\nmain()\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_env(), cwd=REPO, timeout=60)


def test_without_pyarrow_parquet_in_or_out_says_which_pip_install_fixes_it(tmp_path):
    points = tmp_path / "p.parquet"   # (never opened: the error comes first)
    points.write_bytes(b"PAR1")
    done = without_pyarrow("eval", "x", "--points", points)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"jacli: error: --points: reading {points} needs pyarrow, which is "
                           "not installed: pip install 'jacli[parquet]'\n")
    out = tmp_path / "out.parquet"
    done = without_pyarrow("eval", "x", "--at", "x=1", "-o", str(out))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"jacli: error: -o: writing {out} needs pyarrow, which is not "
                           "installed: pip install 'jacli[parquet]'\n")
    assert not out.exists()
    done = without_pyarrow("eval", "x", "--at", "x=1")   # and nothing else needs it
    assert (done.returncode, done.stdout, done.stderr) == (0, "1.0\n", "")


def test_runs_without_parquet_never_load_pyarrow(tmp_path):
    points = tmp_path / "p.csv"
    points.write_text("x,y,z\n1,2,3\n")
    code = ("import sys\nfrom jacli.cli import main\n"
            "for argv in (['grad', 'x^2*y + sin(z)', '--at', 'x=1,y=2,z=3'],\n"
            f"             ['grad', 'x^2*y + sin(z)', '--points', {str(points)!r}]):\n"
            "    sys.argv = ['jacli'] + argv\n"
            "    try:\n        main()\n    except SystemExit as e:\n        assert not e.code\n"
            "print('pyarrow' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_env(), cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "False"


_NEED_NO_PYARROW = {"test_without_pyarrow_parquet_in_or_out_says_which_pip_install_fixes_it",
                    "test_runs_without_parquet_never_load_pyarrow"}
for _name, _test in list(globals().items()):   # every other test reads or writes Parquet
    if _name.startswith("test_") and _name not in _NEED_NO_PYARROW:
        globals()[_name] = pytest.mark.skipif(pa is None, reason="needs pyarrow: "
                                              "pip install 'jacli[parquet]'")(_test)

"""Hostile points files and programs (issue 10, the input side): one bad row never ends
the batch, memory stays bounded by the chunk whatever the input, and a pipe stage
passes its results on as its input arrives.

Each test is named after the behaviour it pins down, and fails on the code before it
(exit 70, a crash, gigabytes, or results held back). Expected values are worked out by
hand. The memory tests run jacli as a process on a 50 MB input and read its own peak
RSS (os.wait4); the rest run in process.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, _env, invoke_jacli

UNICODE_SPACES = ["\xa0", "\u2003", "\u2028", "\x1c", "\x85", "\x0b"]


def write(path, data) -> str:
    with open(path, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    return str(path)


def bad_rows(err: str) -> dict[int, str]:
    """`jacli: row K: message` lines of standard error, as {K: message}."""
    assert "internal error" not in err and "Traceback" not in err, err
    found = {}
    for line in err.splitlines():
        if line.startswith("jacli: row "):
            number, _, message = line[len("jacli: row "):].partition(": ")
            found[int(number)] = message
    return found


# === item 6: one rule for Unicode whitespace, in the fast and the row-by-row reader ====

@pytest.mark.parametrize("space", UNICODE_SPACES, ids=[f"U+{ord(c):04X}" for c in UNICODE_SPACES])
@pytest.mark.parametrize("other", ["3", "abc"], ids=["fast-path", "slow-path"])
def test_unicode_whitespace_around_a_csv_number_makes_it_not_a_number_in_every_chunk(
        tmp_path, space, other):
    # With only good rows beside it, NumPy's fast reader used to strip the space (2.0);
    # beside a bad row the careful reader refused it (nan): now both refuse it.
    path = write(tmp_path / "p.csv", f"x\n1\n{space}2\n2{space}\n{other}\n")
    code, out, err = invoke_jacli("eval", "x", "--points", path)
    assert out.splitlines()[:3] == ["1.0", "nan", "nan"]
    assert code == 1
    rows = bad_rows(err)
    assert rows[2] == f"the value of 'x' is not a number: {space + '2'!r}"
    assert rows[3] == f"the value of 'x' is not a number: {'2' + space!r}"


def test_unicode_whitespace_does_not_separate_space_separated_points(tmp_path):
    # ssv fields are separated by runs of spaces or tabs; an NBSP is a character of its
    # field, as in CSV: that field is not a number (not a row of three fields).
    path = write(tmp_path / "p.txt", "a b\n1 2\n3\xa04 5\n6\t 7\n")
    code, out, err = invoke_jacli("eval", "a + b", "--points", path, "--points-format", "ssv")
    assert (code, out.splitlines()) == (1, ["3.0", "nan", "13.0"])
    assert bad_rows(err) == {2: "the value of 'a' is not a number: " + repr("3\xa04")}


@pytest.mark.parametrize("other", ["3", "abc"], ids=["fast-path", "slow-path"])
def test_spaces_and_tabs_around_a_csv_number_are_ignored_in_every_chunk(tmp_path, other):
    path = write(tmp_path / "p.csv", f"x\n 2\t\n\t3 \n{other}\n")
    code, out, err = invoke_jacli("eval", "x", "--points", path)
    assert out.splitlines()[:2] == ["2.0", "3.0"]


# === item 8: each of these is a bad row (or, said and documented, a number) ===========

def test_json_lines_integer_beyond_the_double_range_is_a_bad_row(tmp_path):
    # No double is 2**1024 - 1 (it rounds up, past the largest, 2**1024 - 2**971); the
    # largest double written as a 309-digit integer is that double. A JSON 1e400 is a
    # float, and inf, as in a program.
    lines = [{"x": 2 ** 1024 - 1}, {"x": -(10 ** 400)}, {"x": 2 ** 1024 - 2 ** 971},
             {"x": 1e400}]
    text = "".join(json.dumps(r) + "\n" for r in lines).replace("Infinity", "1e400") \
        + f'{{"x": {"9" * 5000}}}\n{{"x": 3}}\n'
    path = write(tmp_path / "p.jsonl", text)
    code, out, err = invoke_jacli("eval", "x", "--points", path)
    assert (code, out.splitlines()) == (1, ["nan", "nan", "1.7976931348623157e+308", "inf",
                                            "nan", "3.0"]), err
    too_large = "the value of 'x' is an integer too large for a double"
    assert bad_rows(err) == {1: too_large, 2: too_large, 5: too_large}


def test_deeply_nested_json_value_is_a_bad_row(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    path = write(tmp_path / "p.jsonl", f'{{"x": 1}}\n{{"x": 2, "note": {deep}}}\n{{"x": 3}}\n')
    code, out, err = invoke_jacli("eval", "x", "--points", path)
    assert (code, out.splitlines()) == (1, ["1.0", "nan", "3.0"])
    assert bad_rows(err) == {2: "is nested too deeply to be read as JSON"}


def test_csv_field_longer_than_the_csv_modules_limit_is_read_like_any_field(tmp_path):
    long = "7" * 140_000 + "x"   # the csv module refuses fields over 131,072 characters
    path = write(tmp_path / "p.csv", f"x,note\n1,{'a' * 140_000}\n{long},b\n"
                                     f"3,\"{'c' * 140_000}\"\n4,d\nabc,e\n")
    code, out, err = invoke_jacli("eval", "x", "--points", path)
    assert out.splitlines() == ["1.0", "nan", "3.0", "4.0", "nan"]   # an ignored column
    rows = bad_rows(err)                                           # holds anything
    assert sorted(rows) == [2, 5] and "(140,001 characters)" in rows[2] and len(rows[2]) < 120


def test_stray_carriage_return_inside_a_csv_field_is_a_bad_row(tmp_path):
    path = write(tmp_path / "p.csv", "x,y\n1,2\r5\n3,4\n\"5\r\",6\n7,8\n")
    code, out, err = invoke_jacli("eval", "x", "--points", path)
    assert (code, out.splitlines()) == (1, ["nan", "3.0", "nan", "7.0"])
    rows = bad_rows(err)
    assert rows == {1: "has a \\r or \\n inside a field (not the file's line end)",
                    3: "the value of 'x' is not a number: '5\\r'"}


@pytest.mark.parametrize("fmt, text", [("csv", "x,y\r1,2\r3,4\r\r"),
                                       ("jsonl", '{"x": 1}\r{"x": 3}\r')])
def test_cr_only_line_ends_are_line_ends_as_crlf_are(tmp_path, fmt, text):
    path = write(tmp_path / f"p.{fmt}", text)
    code, out, err = invoke_jacli("eval", "x", "--points", path)
    assert (code, out.splitlines(), err) == (0, ["1.0", "3.0"], "")


def test_a_line_over_the_line_limit_is_a_bad_row_and_the_others_go_on(tmp_path):
    from jacli.points import LINE_LIMIT

    path = write(tmp_path / "p.csv", f"x\n1\n{'2' * (LINE_LIMIT + 10)}\n3\n")
    code, out, err = invoke_jacli("eval", "x", "--points", path)
    assert (code, out.splitlines()) == (1, ["1.0", "nan", "3.0"])
    assert bad_rows(err) == {2: f"is longer than {LINE_LIMIT:,} bytes"}


# === item 9: a JSON Lines key that --at gives too is a bad row, wherever it is ==========

def test_json_lines_key_given_by_at_is_a_bad_row_even_after_the_first_chunk(tmp_path):
    rows = 65_536 + 3
    lines = ['{"x": 1}\n'] * rows
    lines[65_537] = '{"x": 1, "y": 7}\n'          # row 65,538, in the second chunk
    path = write(tmp_path / "p.jsonl", "".join(lines))
    code, out, err = invoke_jacli("eval", "x*y", "--points", path, "--at", "y=5")
    values = out.splitlines()
    assert code == 1 and len(values) == rows
    assert values[65_537] == "nan" and set(values[:65_537] + values[65_538:]) == {"5.0"}
    assert bad_rows(err) == {65_538: "gives 'y', which --at gives too"}


# === item 10: .npy files that are not, or lie, or shrink ==============================

def test_npz_archive_given_as_npy_points_is_a_clear_error(tmp_path):
    path = tmp_path / "p.npy"
    with open(path, "wb") as f:
        np.savez(f, a=np.ones((3, 1)))
    code, out, err = invoke_jacli("eval", "x", "--points", str(path))
    assert (code, out) == (2, "")
    assert "is a zip archive (an .npz?), not an .npy file" in err


def npy_header(rows: int, width: int = 1) -> bytes:
    import io
    from numpy.lib import format as npy

    buffer = io.BytesIO()
    npy.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False,
                                        "shape": (rows, width)})
    return buffer.getvalue()


def test_npy_on_standard_input_whose_header_claims_1e12_rows_is_a_clear_error():
    data = npy_header(10 ** 12) + np.arange(3.0).tobytes()
    code, out, err = invoke_jacli("eval", "x", "--points", "-", "--points-format", "npy",
                                  input=data)
    assert (code, out) == (2, "")
    assert "standard input ends after 3 rows: its header says 1,000,000,000,000" in err


def test_npy_file_shorter_than_its_header_says_is_an_error_before_any_result(tmp_path):
    path = write(tmp_path / "p.npy", npy_header(5) + np.arange(3.0).tobytes())
    code, out, err = invoke_jacli("eval", "x", "--points", path)
    assert (code, out) == (2, "")
    assert "p.npy ends after 3 rows: its header says 5" in err


def test_npy_file_truncated_while_it_is_read_is_an_error_not_a_crash(tmp_path):
    # (Memory-mapped, the second chunk's pages were gone: SIGBUS killed the process.)
    path = tmp_path / "p.npy"
    np.save(path, np.arange(200_000.0))
    script = f"""
import os
from jacli.errors import JacliError
from jacli.points import PointsReader
reader = PointsReader({str(path)!r}, None, ["x"], ["x"], ["x"])
chunks = reader.chunks()
first = next(chunks)
assert first.columns["x"][-1] == 65535.0
os.truncate({str(path)!r}, 128 + 8 * 70_000)
try:
    next(chunks)
except JacliError as error:
    print(error.message)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=_env(), timeout=60)
    assert done.returncode == 0, done
    assert done.stdout.strip() == f"{path} ends after 70,000 rows: its header says 200,000"


# === item 11: memory bounded by the chunk, not by the input ===========================

# A child's peak RSS counts the pages it had before exec, shared with its parent: started
# from a large pytest process it would read a few hundred MB. So a small Python process
# starts jacli and reports what os.wait4 says of it.
MEASURE = """
import os, subprocess, sys
with open(sys.argv[1], "rb") as stdin:
    child = subprocess.Popen(sys.argv[2:], stdin=stdin, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def peak_rss_mb(args: list[str], stdin_path: str) -> tuple[int, float, bytes]:
    """Run jacli as a process; its exit status, its own peak RSS (MB) and stderr."""
    done = subprocess.run([sys.executable, "-c", MEASURE, stdin_path, sys.executable, "-m",
                           "jacli", *args], capture_output=True, env=_env(), cwd=REPO,
                          timeout=120)
    code, peak_kb = map(int, done.stdout.split())
    return code, peak_kb / 1024, done.stderr


@pytest.fixture(scope="module")
def zeros_50mb(tmp_path_factory):
    """50 MB of NUL bytes (as `head -c 50M /dev/zero`), a sparse file."""
    path = tmp_path_factory.mktemp("zeros") / "zeros"
    with open(path, "wb") as f:
        f.truncate(50 << 20)
    return str(path)


@pytest.mark.parametrize("args, status, message", [
    (["eval", "x", "--points", "-"], 2, b"the header of standard input is longer than"),
    (["eval", "x", "--points", "-", "--points-format", "jsonl"], 1, b"row 1: is longer than"),
    (["eval", "x", "--points", "-", "--points-format", "npy"], 2,
     b"standard input is not a NumPy .npy file"),
    (["eval", "-f", "-"], 2, b"standard input is longer than 16,777,216 bytes"),
], ids=["csv", "jsonl", "npy", "program"])
def test_endless_zeros_on_standard_input_stay_in_bounded_memory(zeros_50mb, args, status,
                                                                 message):
    code, peak, err = peak_rss_mb(args, zeros_50mb)
    assert code == status and message in err, (code, err)
    assert peak < 75, f"peak RSS {peak:.0f} MB for 50 MB of zeros"


@pytest.mark.parametrize("args", [["--points", "/dev/zero"], ["--points", "-"]],
                         ids=["file", "stdin"])
def test_a_header_that_never_ends_is_refused_without_waiting_for_its_end(args):
    # /dev/zero never ends its first line: the limit is said once it is passed.
    done = subprocess.run([sys.executable, "-m", "jacli", "eval", "x", *args],
                          stdin=open("/dev/zero", "rb"), capture_output=True, env=_env(),
                          timeout=30)
    assert done.returncode == 2, done.stderr
    assert b"header of" in done.stderr and b"is longer than" in done.stderr


def test_hess_chunks_of_points_shrink_with_the_square_of_the_inputs(tmp_path):
    # 200 inputs over 300 rows: one chunk would hold 300 x 200 x 200 Hessian numbers.
    import jacli
    from jacli.batch import RESULT_FLOATS, Batch

    names = [f"x{i}" for i in range(200)]
    program = " + ".join(f"{a}*{b}" for a, b in zip(names, names[1:]))
    path = write(tmp_path / "p.csv", ",".join(names) + "\n"
                 + "".join(",".join(["1"] * 200) + "\n" for _ in range(300)))
    job = Batch(jacli.compile(program), "hess", str(path))
    chunks = list(job.chunks())
    counts = [points.count for points in chunks]
    assert sum(counts) == 300 and max(counts) * 200 * 200 <= RESULT_FLOATS
    assert [p.first_row for p in chunks] == list(np.cumsum([0] + counts[:-1]))


def test_the_engine_is_given_fewer_points_at_once_for_a_wide_hessian(monkeypatch):
    import jacli
    import jacli.api

    seen = []
    evaluate = jacli.api.evaluate

    def spy(tape, chunk, size, *args, **kwargs):
        seen.append(size)
        return evaluate(tape, chunk, size, *args, **kwargs)

    monkeypatch.setattr(jacli.api, "evaluate", spy)
    names = [f"x{i}" for i in range(200)]
    program = jacli.compile(" + ".join(f"{a}*{b}" for a, b in zip(names, names[1:])))
    result = program.hessian({name: np.full(300, 2.0) for name in names})
    assert sum(seen) == 300 and max(seen) * 201 * 200 <= jacli.api.CHUNK_FLOATS
    hessian = result.hessian[123]          # d2/dxi dxj of sum x_i x_{i+1}: 1 next door
    assert hessian[5, 6] == hessian[6, 5] == 1.0 and hessian.sum() == 2 * 199


def test_check_evaluates_its_points_chunk_by_chunk(tmp_path, monkeypatch):
    import jacli.check

    sizes = []
    check_jacobian = jacli.check.check_jacobian

    def spy(program, point, *args):
        sizes.append(len(point["x"]))
        return check_jacobian(program, point, *args)

    monkeypatch.setattr(jacli.check, "check_jacobian", spy)
    path = write(tmp_path / "p.csv", "x\n" + "".join(f"{i % 7}\n" for i in range(70_000))
                 + "abc\n")
    code, out, err = invoke_jacli("check", "x^2", "--points", path, "--format", "csv")
    lines = out.splitlines()
    assert sizes == [65_536, 70_001 - 65_536 - 1]
    assert lines[0].startswith("x,ok,") and len(lines) == 70_002 and lines.count(lines[0]) == 1
    assert lines[-1].startswith("nan,false,") and code == 1


# === item 14: the tape's text column is bounded ======================================

def test_tape_output_grows_linearly_with_nesting_depth():
    def size(depth: int) -> int:
        code, out, err = invoke_jacli("tape", "sin(" * depth + "x" + ")" * depth,
                                      "--format", "csv")
        assert code == 0, err
        return len(out)

    small, large = size(1000), size(2000)
    assert large < 2.2 * small          # quadratic would be 4x
    assert large < 200 * 2000


# === item 15: a pipe stage passes results on as its input arrives =====================

def test_results_of_a_stalled_pipe_are_written_before_more_input_comes():
    process = subprocess.Popen([sys.executable, "-m", "jacli", "eval", "x", "--points", "-"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=_env(), cwd=REPO)
    try:
        process.stdin.write(b"x\n1\n")
        process.stdin.flush()
        ready, _, _ = select.select([process.stdout], [], [], 10)
        first = os.read(process.stdout.fileno(), 100) if ready else b""
        process.stdin.write(b"2\n")
        process.stdin.close()
        rest = process.stdout.read()
    finally:
        if process.poll() is None:
            process.stdin.close()
        process.wait(30)
    assert first == b"1.0\n", "the first result waited for the end of the input"
    assert rest == b"2.0\n" and process.returncode == 0


# === item 19 =========================================================================

def test_csv_with_blank_lines_before_its_header_is_read(tmp_path):
    path = write(tmp_path / "p.csv", "\n \n\r\nx,y\n1,2\n3,4\n")
    code, out, err = invoke_jacli("eval", "x*y", "--points", path)
    assert (code, out.splitlines(), err) == (0, ["2.0", "12.0"], "")


@pytest.mark.parametrize("args", [
    ["eval", "N"], ["eval", "x", "--at", "N=1"], ["eval", "x", "--at", "x=1", "--out", "N"],
    ["grad", "x", "--at", "x=1", "--wrt", "N"], ["eval", "N(x)", "--at", "x=1"],
    ["eval", "N = x; N = x", "--at", "x=1"],
], ids=["program", "at", "out", "wrt", "function", "defined-twice"])
def test_a_100k_character_name_gives_a_short_message(args):
    name = "a" * 100_000
    code, out, err = invoke_jacli(*[a.replace("N", name) for a in args])
    assert code == 2 and "100,000 characters" in err
    assert len(err) < 600, len(err)


def test_program_file_longer_than_16_mib_is_an_error(tmp_path):
    path = tmp_path / "big.jac"
    with open(path, "wb") as f:
        f.truncate((16 << 20) + 1)
    code, out, err = invoke_jacli("eval", "-f", str(path))
    assert code == 2 and "is longer than 16,777,216 bytes" in err

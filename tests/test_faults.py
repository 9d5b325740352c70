"""Output under faults (issue 10): every byte written or a non-zero exit with a message, and
the file `-o` names replaced only as the user asked.

jacli runs here as a real process, because each fault is one of a process: a full small file
system (a 64 KB tmpfs where the test may mount one, else a 64 KB file-size limit, which cuts
writes short the same way), standard output or error closed or full, a FIFO whose reader
leaves, SIGTERM and SIGHUP mid-write, PYTHONUNBUFFERED=1, `ulimit -v`. Each test asserts
all-or-error: a complete result and exit 0, or an error and no partial result, and no
temporary file left. The cases that need no process run in process (`invoke_jacli`).
Expected texts are written out by hand; numbers come from Python's own arithmetic.
"""

from __future__ import annotations

import os
import resource
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, _env, invoke_jacli

JACLI = f"{shlex.quote(sys.executable)} -m jacli"
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
POLAR = str(REPO / "samples" / "polar.jac")
ROWS = 2500     # polar's Jacobian: ~270 KB of CSV, 80 KB of .npy; the small disk holds 64


def sh(script: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env={**_env(), **(env or {})},
                          timeout=60, **kwargs)


def assert_quiet(err: str) -> None:
    assert "Traceback" not in err and "internal error" not in err, err
    assert "Exception ignored" not in err, err


def leftovers(directory) -> list[str]:
    """Temporary files jacli left (`.NAME.XXXX.tmp`)."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture(scope="module")
def points(tmp_path_factory):
    path = tmp_path_factory.mktemp("points") / "b1k.csv"
    path.write_text("x,y\n" + "".join(f"{i + 1},{(i % 7) - 3}\n" for i in range(ROWS)))
    return path


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory):
    """(directory, preexec): a 64 KB tmpfs, or where none can be mounted a directory and
    a 64 KB file-size limit for the process (a write past it is cut short, then EFBIG)."""
    directory = tmp_path_factory.mktemp("small")
    mounted = ROOT and shutil.which("mount") and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(directory)],
        capture_output=True).returncode == 0
    limit = None if mounted else (
        lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536)))
    yield directory, limit
    if mounted:
        subprocess.run(["umount", str(directory)], capture_output=True)


@pytest.fixture
def disk(small_disk):
    directory, limit = small_disk
    for path in directory.iterdir():
        path.unlink()
    return directory, limit


FULL = ("No space left on device", "File too large")


# --- 1, 18. Every byte written, or exit 1 with a message ------------------------------------

def test_stdout_redirected_to_a_full_disk_fails_the_run(disk, points):
    directory, limit = disk
    target = directory / "j.csv"
    # Unbuffered, the one write of a chunk is cut short by the kernel: today exit 0.
    done = sh(f"{JACLI} jac -f {POLAR} --points {points} --format csv > {target}",
              env={"PYTHONUNBUFFERED": "1"}, preexec_fn=limit)
    assert done.returncode == 1, done.stderr
    assert_quiet(done.stderr)
    assert done.stderr.startswith("jacli: cannot write standard output: ")
    assert done.stderr.rstrip().endswith(FULL)


def test_diff_to_a_full_disk_fails_the_run(disk):
    directory, limit = disk
    program = " + ".join(f"x{i}*y{i}" for i in range(1800))   # its derivatives: ~70 KB
    done = sh(f"{JACLI} diff {shlex.quote(program)} > {directory / 'd.jac'}",
              env={"PYTHONUNBUFFERED": "1"}, preexec_fn=limit)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("jacli: cannot write standard output: ")


@pytest.mark.parametrize("name", ["k.csv", "k.npy"])
def test_output_file_on_a_full_disk_is_exit_1_and_keeps_the_old_file(disk, points, name):
    directory, limit = disk
    target = directory / name
    target.write_text("old\n")
    done = sh(f"{JACLI} jac -f {POLAR} --points {points} -o {target}",
              env={"PYTHONUNBUFFERED": "1"}, preexec_fn=limit)
    assert done.returncode == 1, done.stderr   # a failure of the run, not a usage error
    assert_quiet(done.stderr)
    # .npy too keeps the reason (today: "cannot write k.npy: None")
    assert done.stderr.startswith(f"jacli: cannot write {target}: "), done.stderr
    assert done.stderr.rstrip().endswith(FULL), done.stderr
    assert target.read_text() == "old\n"
    assert leftovers(directory) == []


def test_graph_into_head_ends_141_quietly():
    program = " + ".join(f"sin(x{i})*x{i}" for i in range(300))   # the graph: ~90 KB
    done = sh(f"{JACLI} graph {shlex.quote(program)} | head -c 100; "
              "status=${PIPESTATUS[0]}; echo; echo \"jacli=$status\"",
              env={"PYTHONUNBUFFERED": "1"})
    assert done.stdout.startswith("digraph")
    assert done.stdout.splitlines()[-1] == "jacli=141", done.stderr
    assert done.stderr == ""


def test_a_fifo_whose_reader_leaves_ends_like_a_pipe(tmp_path, points):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    done = sh(f"head -c 100 {fifo} > /dev/null & "
              f"{JACLI} jac -f {POLAR} --points {points} --format csv -o {fifo}; "
              "echo \"jacli=$?\"; wait")
    assert done.stdout.splitlines()[-1] == "jacli=141", done.stderr
    assert done.stderr == ""


# --- 2. -o names of the open descriptors ----------------------------------------------------

def test_output_dev_stdout_appends_to_the_file_the_shell_opened(tmp_path):
    log = tmp_path / "log.txt"
    log.write_text("earlier\n")
    done = sh(f"{JACLI} eval x --at x=2 -o /dev/stdout >> {log} && "
              f"{JACLI} eval x --at x=3 -o /proc/self/fd/1 >> {log} && "
              f"{JACLI} eval x --at x=4 -o /dev/stderr 2>> {log}")
    assert done.returncode == 0, done.stderr
    assert log.read_text() == "earlier\n2.0\n3.0\n4.0\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.txt"]


def test_output_dev_stdout_into_a_pipe_and_a_numbered_descriptor(tmp_path):
    extra = tmp_path / "three.txt"
    done = sh(f"{JACLI} grad 'x*y' --at x=2,y=5 -o /dev/stdout | cat; "
              f"{JACLI} eval 'x+1' --at x=1 -o /dev/fd/3 3> {extra}")
    assert (done.returncode, done.stdout, done.stderr) == (0, "5.0 2.0\n", "")
    assert extra.read_text() == "2.0\n"


def test_output_dash_is_standard_output():
    assert invoke_jacli("grad", "x*y", "--at", "x=2,y=5", "-o", "-") == (0, "5.0 2.0\n", "")
    assert not os.path.exists("-")


# --- 3, 17. Standard streams closed ---------------------------------------------------------

def test_closed_stderr_keeps_the_results_intact_and_drops_diagnostics():
    for redirect in ("2>&-", "2>/dev/full"):
        done = sh(f"printf 'x,y\\n1,2\\n,3\\n4,5\\n' | {JACLI} eval 'x*y' --points - {redirect}")
        assert (done.returncode, done.stdout) == (1, "2.0\nnan\n20.0\n"), (redirect, done)
        assert done.stderr == ""


def test_closed_stdout_with_a_glued_short_option():
    done = sh(f"cd {shlex.quote(str(REPO))} && dir=$(mktemp -d) && "
              f"{JACLI} eval x --at x=7 \"-o$dir/ok.txt\" >&- && cat \"$dir/ok.txt\"; "
              "rm -rf \"$dir\"")
    assert (done.returncode, done.stdout, done.stderr) == (0, "7.0\n", "")


def test_closed_stdin_is_an_error_naming_it():
    done = sh(f"{JACLI} eval x --points - <&-")
    assert done.returncode == 2, done.stderr
    assert done.stderr == ("jacli: error: --points: cannot read points file standard input: "
                           "standard input is closed\n")


def test_help_into_a_full_device_is_exit_1():
    # Buffered (PYTHONUNBUFFERED empty): the failed bytes are not tried again at exit.
    done = sh(f"{JACLI} --help > /dev/full", env={"PYTHONUNBUFFERED": ""})
    assert (done.returncode, done.stderr) == (
        1, "jacli: cannot write standard output: No space left on device\n")


def test_ascii_encoding_with_table_output():
    done = sh(f"{JACLI} grad 'x*y' --at x=2,y=5 --format table",
              env={"PYTHONIOENCODING": "ascii"})
    assert done.returncode == 0, done.stderr
    assert "| x     |     2 |          5 |" in done.stdout   # d(x*y)/dx at (2, 5)
    assert "?f1/?input" in done.stdout   # the ∂ that ASCII lacks


def test_a_completion_variable_in_the_environment_does_not_hijack_a_run():
    # As the console script runs it: click names the variable after argv[0].
    code = "import sys; sys.argv[0] = 'jacli'; from jacli.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", code, "eval", "x+1", "--at", "x=1"],
                          capture_output=True, text=True, timeout=60,
                          env={**_env(), "_JACLI_COMPLETE": "1"})
    assert (done.returncode, done.stdout, done.stderr) == (0, "2.0\n", "")


# --- 4. -o replacing an existing file -------------------------------------------------------

@pytest.mark.parametrize("mode", [0o600, 0o755, 0o640])
def test_output_keeps_the_mode_of_the_file_it_replaces(tmp_path, mode):
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    target.chmod(mode)
    assert invoke_jacli("eval", "x", "--at", "x=1", "-o", target) == (0, "", "")
    assert target.read_text() == "1.0\n"
    assert stat.S_IMODE(target.stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_output_into_another_hard_link_writes_in_place(tmp_path):
    target, other = tmp_path / "out.txt", tmp_path / "other.txt"
    target.write_text("old\n")
    os.link(target, other)
    assert invoke_jacli("eval", "x", "--at", "x=1", "-o", target)[0] == 0
    assert other.read_text() == "1.0\n"   # still one file, as `>` leaves it


def without_dac_override():
    """A root process without the power to override file modes: one that can be refused
    as a user is (tests run as root here; the interpreter is root's)."""
    setpriv = shutil.which("setpriv")
    if not ROOT or not setpriv:
        pytest.skip("needs root and setpriv")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


def test_output_refuses_a_file_that_cannot_be_written_with_redirection(tmp_path):
    target = tmp_path / "readonly.txt"
    target.write_text("old\n")
    target.chmod(0o444)
    done = subprocess.run(without_dac_override() + [sys.executable, "-m", "jacli", "eval",
                          "x", "--at", "x=1", "-o", str(target)], capture_output=True,
                          text=True, env=_env(), timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"jacli: error: -o: cannot write {target}: Permission denied\n"
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["readonly.txt"]


def test_output_writes_a_writable_file_in_a_read_only_directory_in_place(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    target = locked / "out.txt"
    target.write_text("old\n")
    target.chmod(0o666)
    locked.chmod(0o555)
    try:
        done = subprocess.run(without_dac_override() + [sys.executable, "-m", "jacli", "eval",
                              "x", "--at", "x=3", "-o", str(target)], capture_output=True,
                              text=True, env=_env(), timeout=60)
    finally:
        locked.chmod(0o755)
    assert (done.returncode, done.stderr) == (0, "")
    assert target.read_text() == "3.0\n"


@pytest.mark.skipif(not ROOT, reason="needs root to give a symlink another owner")
def test_output_does_not_follow_a_foreign_symlink_in_a_sticky_directory(tmp_path):
    public = tmp_path / "public"
    public.mkdir()
    public.chmod(0o1777)   # like /tmp
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    planted = public / "out.txt"
    planted.symlink_to(victim)
    os.lchown(planted, 65534, 65534)   # planted by another user
    code, out, err = invoke_jacli("eval", "x", "--at", "x=1", "-o", planted)
    assert code == 2, err
    assert f"cannot write {planted}: a symlink in a sticky world-writable directory" in err
    assert victim.read_text() == "precious\n"
    # One's own symlink there is followed, as `>` follows it.
    os.lchown(planted, os.geteuid(), os.getegid())
    assert invoke_jacli("eval", "x", "--at", "x=1", "-o", planted)[0] == 0
    assert victim.read_text() == "1.0\n"


def test_output_sets_the_mode_on_its_descriptor_not_on_a_swapped_name(tmp_path):
    """The temporary file is swapped for a symlink to a 0600 file while jacli waits for
    its points: the mode jacli sets must not reach that file."""
    victim = tmp_path / "secret.txt"
    victim.write_text("secret\n")
    victim.chmod(0o600)
    work = tmp_path / "work"
    work.mkdir()
    process = subprocess.Popen([sys.executable, "-m", "jacli", "eval", "x", "--points", "-",
                                "-o", str(work / "out.txt")], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    try:
        process.stdin.write(b"x\n1\n")
        process.stdin.flush()
        temps = wait_for(lambda: leftovers(work))
        (work / temps[0]).unlink()
        (work / temps[0]).symlink_to(victim)
        process.stdin.close()
        process.wait(timeout=60)
    finally:
        stop(process)
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600


# --- 5. Signals mid-write -------------------------------------------------------------------

def wait_for(found, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not (value := found()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
    return value


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGXCPU],
                         ids=["SIGTERM", "SIGHUP", "SIGXCPU"])
def test_a_signal_mid_write_leaves_no_temporary_file(tmp_path, signum):
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    process = subprocess.Popen([sys.executable, "-m", "jacli", "eval", "x", "--points", "-",
                                "-o", str(target)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    try:
        process.stdin.write(b"x\n" + b"1\n" * 70_000)   # more than a chunk: some are written
        process.stdin.flush()
        wait_for(lambda: leftovers(tmp_path))   # mid-write: the temporary file is there
        assert process.poll() is None
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
    finally:
        stop(process)
    assert process.returncode == 128 + signum, err
    assert target.read_text() == "old\n"
    assert leftovers(tmp_path) == []


# --- 12. Out of memory ----------------------------------------------------------------------

def test_out_of_memory_is_exit_1_with_a_message_and_no_temporary_file(tmp_path):
    # The Hessians that .npy gathers: 3000 * 100 * 100 doubles, 229 MiB, however chunked.
    n, rows = 100, 3000
    data = tmp_path / "points.csv"
    data.write_text(",".join(f"x{i}" for i in range(n)) + "\n"
                    + ("," .join(["1"] * n) + "\n") * rows)
    program = " + ".join(f"x{i}*x{(i + 1) % n}" for i in range(n))
    target = tmp_path / "h.npy"
    target.write_text("old\n")
    done = sh(f"ulimit -v 200000; {JACLI} hess {shlex.quote(program)} --points {data} "
              f"-o {target}")
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("jacli: error: out of memory"), done.stderr
    assert target.read_text() == "old\n"
    assert leftovers(tmp_path) == []


# --- 16. Smaller output items ---------------------------------------------------------------

@pytest.mark.skipif(not os.access("/proc/self/mem", os.R_OK), reason="needs /proc/self/mem")
def test_a_points_read_error_is_not_reported_as_a_write_error():
    code, out, err = invoke_jacli("eval", "x", "--points", "/proc/self/mem",
                                  "--points-format", "csv")
    assert code == 2, err
    assert "standard output" not in err
    assert err.startswith("jacli: error: --points: cannot read points file /proc/self/mem: ")


@pytest.mark.parametrize("args", [("eval", "x", "--at", "x=1"), ("diff", "x^2"),
                                  ("graph", "x"), ("tape", "x"), ("check", "x", "--at", "x=1"),
                                  ("jac", "x", "--at", "x=1", "--points", "-")])
def test_an_empty_output_path_is_an_error_for_every_command(args):
    code, out, err = invoke_jacli(*args, "-o", "", input="x\n1\n")
    assert (code, out) == (2, ""), err
    assert err == "jacli: error: -o: the output path is empty\n"


def test_output_with_a_trailing_slash_is_refused(tmp_path):
    target = f"{tmp_path}/x.csv/"
    code, out, err = invoke_jacli("eval", "x", "--at", "x=1", "-o", target)
    assert (code, err) == (2, f"jacli: error: -o: cannot write {target}: Is a directory\n")
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_output_ending_needs_format(tmp_path):
    target = tmp_path / "out.xlsx"
    code, out, err = invoke_jacli("eval", "x", "--at", "x=1", "-o", target)
    assert code == 2
    assert err.startswith(f"jacli: error: -o: cannot tell the format of {target} from its "
                          "ending\n")
    assert not target.exists()
    assert invoke_jacli("eval", "x", "--at", "x=1", "-o", target, "--format", "csv")[0] == 0
    assert target.read_text() == "x,f1\n1.0,1.0\n"


@pytest.mark.parametrize("name", ["out.npy", "out.npz"])
def test_an_explicit_text_format_for_a_numpy_file_is_refused(tmp_path, name):
    target = tmp_path / name
    code, out, err = invoke_jacli("eval", "x", "--at", "x=1", "-o", target, "--format", "csv")
    assert code == 2
    assert err.startswith(f"jacli: error: -o: {target} is a NumPy file: --format csv "
                          "cannot be written to it\n")
    assert list(tmp_path.iterdir()) == []
    assert invoke_jacli("eval", "x", "--at", "x=1", "-o", target)[0] == 0
    data = np.load(target)
    assert (data if name == "out.npy" else data["value"]).tolist() == [[1.0]]


# --- 18. tape --format csv ------------------------------------------------------------------

def test_tape_csv_quotes_a_carriage_return():
    import csv
    import io

    code, out, err = invoke_jacli("tape", "sin(x)\r+1", "--format", "csv")
    assert code == 0, err
    records = list(csv.reader(io.StringIO(out, newline="")))
    assert all(len(record) == len(records[0]) for record in records), records
    assert records[-1][3] == "sin(x)\r+1"

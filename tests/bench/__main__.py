"""Benchmarks: jacli against hand-written NumPy, measured side by side in one run.

    cd /work/main && python -m tests.bench             # full: 1,000,000 points
    cd /work/main && python -m tests.bench --quick     # smoke run: 100,000 points, fewer repeats
    cd /work/main && python -m tests.bench --profile   # also cProfile one jacli API call

Every comparison is interleaved (jacli and the reference alternate, and which of the
two goes first alternates as well) and reported as the median of the repetitions,
because the machine may be shared. Each pair is checked to agree (np.allclose) before
it is timed; a disagreement stops the run with exit status 1.

The references are written out by hand, vectorized over the points, and compute what
jacli returns: the values (B, m) and the Jacobian (B, m, n).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import jacli

# --- the programs and their hand-written references --------------------------------------

PROG3 = "u = x*y + sin(z)\nv = exp(x)*cos(y)\nw = x^2 + y*z\n"

# Source text, so the same function runs in-process and in the CLI reference script.
REF3_SRC = '''
def ref3(x, y, z):
    """u = x*y + sin(z); v = exp(x)*cos(y); w = x^2 + y*z -> values (B,3), Jacobian (B,3,3)."""
    ex = np.exp(x)
    cy = np.cos(y)
    value = np.empty((len(x), 3))
    value[:, 0] = x * y + np.sin(z)
    value[:, 1] = ex * cy
    value[:, 2] = x * x + y * z
    J = np.empty((len(x), 3, 3))
    J[:, 0, 0] = y
    J[:, 0, 1] = x
    J[:, 0, 2] = np.cos(z)
    J[:, 1, 0] = value[:, 1]
    J[:, 1, 1] = -ex * np.sin(y)
    J[:, 1, 2] = 0.0
    J[:, 2, 0] = 2.0 * x
    J[:, 2, 1] = z
    J[:, 2, 2] = y
    return value, J
'''

N10 = 10
VARS10 = [f"x{i}" for i in range(N10)]
# A cyclic chain: f = sum_i sin(x_i) * x_{i+1 mod 10}.
PROG10 = " + ".join(f"sin(x{i})*x{(i + 1) % N10}" for i in range(N10))

REF10_SRC = '''
def ref10(xs):
    """f = sum_i sin(x_i) x_{i+1 mod n} -> value (B,1), gradient as Jacobian (B,1,n)."""
    n = len(xs)
    s = [np.sin(x) for x in xs]
    value = np.zeros((len(xs[0]), 1))
    f = value[:, 0]
    for i in range(n):
        f += s[i] * xs[(i + 1) % n]
    G = np.empty((len(xs[0]), 1, n))
    for k in range(n):
        # d/dx_k: cos(x_k) x_{k+1} (from term k) + sin(x_{k-1}) (from term k-1)
        G[:, 0, k] = np.cos(xs[k]) * xs[(k + 1) % n] + s[k - 1]
    return value, G
'''

_namespace: dict = {"np": np}
exec(REF3_SRC, _namespace)
exec(REF10_SRC, _namespace)
ref3 = _namespace["ref3"]
ref10 = _namespace["ref10"]

COLD_PROGRAM = "x^2*y + sin(z)*exp(x)"
COLD_AT = "x=1,y=2,z=3"
COLD_REF = ("import numpy as np; x, y, z = 1.0, 2.0, 3.0; "
            "g = np.array([2*x*y + np.sin(z)*np.exp(x), x*x, np.cos(z)*np.exp(x)]); "
            "print(' '.join(repr(float(v)) for v in g))")

CLI_REF_SCRIPT = ("import sys\nimport numpy as np\n" + REF3_SRC + """
points = np.load(sys.argv[1])
value, J = ref3(points[:, 0], points[:, 1], points[:, 2])
np.save(sys.argv[2], J)
""")


# --- helpers -----------------------------------------------------------------------------

class BenchFailure(Exception):
    pass


def check_close(what: str, got: np.ndarray, want: np.ndarray) -> None:
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        raise BenchFailure(f"{what}: jacli gives shape {got.shape}, the reference {want.shape}")
    if not np.allclose(got, want, rtol=1e-10, atol=1e-12):
        diff = np.abs(got - want)
        worst = np.unravel_index(np.nanargmax(diff), diff.shape)
        raise BenchFailure(f"{what}: jacli and the reference disagree; largest difference "
                           f"{diff[worst]:.3e} at {worst} (jacli {got[worst]!r}, "
                           f"reference {want[worst]!r})")


def interleaved(candidates: dict, repeats: int) -> dict[str, list[float]]:
    """Time each callable `repeats` times, alternating them and their order."""
    names = list(candidates)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            start = time.perf_counter()
            result = candidates[name]()
            times[name].append(time.perf_counter() - start)
            del result
    return times


def run_process(cmd: list[str], cwd: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    if proc.returncode != 0:
        raise BenchFailure(f"`{shlex.join(cmd)}` exited with {proc.returncode}:\n{proc.stderr}")
    return proc.stdout


def jacli_command() -> list[str]:
    """The jacli console script of this interpreter (not a PATH shim), else `python -m jacli`."""
    beside = Path(sys.executable).with_name("jacli")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("jacli")
    return [found] if found else [sys.executable, "-m", "jacli"]


def fmt_time(seconds: float) -> str:
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    return f"{seconds * 1e3:.1f} ms"


class Table:
    def __init__(self):
        self.rows: list[tuple[str, float, float, str]] = []

    def add(self, name: str, times: dict[str, list[float]], detail: str) -> None:
        j = statistics.median(times["jacli"])
        r = statistics.median(times["reference"])
        self.rows.append((name, j, r, detail))
        print(f"  jacli     median {fmt_time(j):>10}  (min {fmt_time(min(times['jacli']))}, "
              f"max {fmt_time(max(times['jacli']))}, n={len(times['jacli'])})")
        print(f"  reference median {fmt_time(r):>10}  (min {fmt_time(min(times['reference']))}, "
              f"max {fmt_time(max(times['reference']))}, n={len(times['reference'])})")
        print(f"  ratio jacli/reference: {j / r:.2f}x", flush=True)

    def print(self) -> None:
        header = ("benchmark", "jacli", "reference", "ratio")
        body = [(name, fmt_time(j), fmt_time(r), f"{j / r:.2f}x") for name, j, r, _ in self.rows]
        widths = [max(len(row[i]) for row in [header] + body) for i in range(4)]
        line = "  ".join("-" * w for w in widths)
        print(line)
        print("  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                        for i, (h, w) in enumerate(zip(header, widths))))
        print(line)
        for row in body:
            print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                            for i, (c, w) in enumerate(zip(row, widths))))
        print(line)
        for name, _, _, detail in self.rows:
            print(f"  {name}: {detail}")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def print_machine(args) -> None:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    load = " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(f"machine:  {platform.platform()}")
    print(f"cpu:      {cpu_model()}; os.cpu_count()={os.cpu_count()}, usable={usable}; "
          f"load average {load}")
    print(f"python:   {platform.python_version()} ({sys.executable})")
    print(f"numpy:    {np.__version__}; jacli {getattr(jacli, '__version__', '?')} "
          f"({Path(jacli.__file__).parent})")
    print(f"mode:     {'quick' if args.quick else 'full'}: {args.points:,} points, "
          f"{args.repeats} in-process / {args.cli_repeats} CLI / {args.cold_repeats} "
          f"cold-start repetitions (median reported)")
    print(flush=True)


# --- the benchmarks ----------------------------------------------------------------------

def bench_jacobian3(args, table: Table, rng) -> None:
    name = f"B2 jacobian 3->3, {args.points:,} pts (API)"
    print(f"{name}\n  program: {PROG3.strip().replace(chr(10), '; ')}", flush=True)
    prog = jacli.compile(PROG3)
    x, y, z = (rng.uniform(-2.0, 2.0, args.points) for _ in range(3))
    point = {"x": x, "y": y, "z": z}
    res = prog.jacobian(point, wrt=["x", "y", "z"])
    value, J = ref3(x, y, z)
    check_close(name + " values", res.value, value)
    check_close(name + " Jacobian", res.jacobian, J)
    print("  agree: values and Jacobian (np.allclose, rtol=1e-10)")
    times = interleaved({"jacli": lambda: prog.jacobian(point, wrt=["x", "y", "z"]),
                         "reference": lambda: ref3(x, y, z)}, args.repeats)
    table.add(name, times, "prog.jacobian(...) vs hand-written NumPy ref3 (values + (B,3,3))")
    if args.profile:
        profile(lambda: prog.jacobian(point, wrt=["x", "y", "z"]), name)


def bench_gradient10(args, table: Table, rng) -> None:
    name = f"gradient 10->1, {args.points:,} pts (API)"
    print(f"{name}\n  program: f = sum_i sin(x_i)*x_(i+1 mod 10)", flush=True)
    prog = jacli.compile(PROG10)
    xs = [rng.uniform(-2.0, 2.0, args.points) for _ in range(N10)]
    point = dict(zip(VARS10, xs))
    res = prog.jacobian(point, wrt=VARS10)
    value, G = ref10(xs)
    check_close(name + " value", res.value, value)
    check_close(name + " gradient", res.jacobian, G)
    print("  agree: value and gradient (np.allclose, rtol=1e-10)")
    times = interleaved({"jacli": lambda: prog.jacobian(point, wrt=VARS10),
                         "reference": lambda: ref10(xs)}, args.repeats)
    table.add(name, times, "prog.jacobian(...) vs hand-written NumPy ref10 (value + (B,1,10))")
    if args.profile:
        profile(lambda: prog.jacobian(point, wrt=VARS10), name)


def bench_cli(args, table: Table, rng, tmp: str) -> None:
    name = f"CLI jac -o J.npy, {args.points:,} pts"
    jac = jacli_command()
    prog_path = Path(tmp, "prog.jac")
    prog_path.write_text(PROG3)
    points = rng.uniform(-2.0, 2.0, (args.points, 3))
    np.save(Path(tmp, "pts.npy"), points)
    Path(tmp, "ref.py").write_text(CLI_REF_SCRIPT)
    jacli_cmd = jac + ["jac", "-f", "prog.jac", "--wrt", "x,y,z", "--points", "pts.npy",
                       "-o", "J.npy"]
    ref_cmd = [sys.executable, "ref.py", "pts.npy", "J_ref.npy"]
    print(f"{name}\n  jacli:     {shlex.join(jacli_cmd)}\n  reference: {shlex.join(ref_cmd)}",
          flush=True)
    run_process(jacli_cmd, tmp)
    run_process(ref_cmd, tmp)
    check_close(name + " J.npy", np.load(Path(tmp, "J.npy")), np.load(Path(tmp, "J_ref.npy")))
    print("  agree: J.npy (np.allclose, rtol=1e-10)")
    times = interleaved({"jacli": lambda: run_process(jacli_cmd, tmp),
                         "reference": lambda: run_process(ref_cmd, tmp)}, args.cli_repeats)
    table.add(name, times, "whole processes: jacli jac -f ... --points pts.npy -o J.npy "
                           "vs python ref.py (np.load, ref3, np.save)")


def bench_cold(args, table: Table, tmp: str) -> None:
    name = "cold start: grad at one point"
    jacli_cmd = jacli_command() + ["grad", COLD_PROGRAM, "--at", COLD_AT]
    ref_cmd = [sys.executable, "-c", COLD_REF]
    print(f"{name}\n  jacli:     {shlex.join(jacli_cmd)}\n  reference: python -c <NumPy one-liner>",
          flush=True)
    got = [float(v) for v in run_process(jacli_cmd, tmp).split()]
    want = [float(v) for v in run_process(ref_cmd, tmp).split()]
    check_close(name, np.array(got), np.array(want))
    print(f"  agree: {got}")
    times = interleaved({"jacli": lambda: run_process(jacli_cmd, tmp),
                         "reference": lambda: run_process(ref_cmd, tmp)}, args.cold_repeats)
    table.add(name, times, f"whole processes: jacli grad '{COLD_PROGRAM}' --at {COLD_AT} "
                           "vs python -c 'import numpy ...'")


def profile(call, name: str) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    call()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    print(f"  profile of one jacli call ({name}), by own time:")
    print("\n".join("    " + line for line in out.getvalue().strip().splitlines()))


# --- main --------------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 100,000 points and fewer repetitions")
    parser.add_argument("--points", type=int, help="points per batch (default 1,000,000; "
                        "100,000 with --quick)")
    parser.add_argument("--repeats", type=int, help="in-process repetitions (default 9; 5 quick)")
    parser.add_argument("--cli-repeats", type=int, help="CLI repetitions (default 5; 3 quick)")
    parser.add_argument("--cold-repeats", type=int,
                        help="cold-start repetitions (default 11; 5 quick)")
    parser.add_argument("--profile", action="store_true",
                        help="also print a cProfile of one jacli API call per API benchmark")
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args(argv)
    defaults = ((100_000, 5, 3, 5) if args.quick else (1_000_000, 9, 5, 11))
    for attr, default in zip(("points", "repeats", "cli_repeats", "cold_repeats"), defaults):
        if getattr(args, attr) is None:
            setattr(args, attr, default)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    print_machine(args)
    rng = np.random.default_rng(args.seed)
    table = Table()
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="jacli-bench-") as tmp:
            bench_jacobian3(args, table, rng)
            print()
            bench_gradient10(args, table, rng)
            print()
            bench_cli(args, table, rng, tmp)
            print()
            bench_cold(args, table, tmp)
            print()
    except BenchFailure as error:
        print(f"\nBENCHMARK FAILED: {error}", file=sys.stderr)
        return 1
    load = " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(f"summary (medians; ratio = jacli / reference; total {time.perf_counter() - started:.0f} s,"
          f" load average now {load})")
    table.print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

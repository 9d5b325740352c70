"""Benchmarks: jacli against hand-written references, side by side in one run.

    cd /work/main && python -m tests.bench                # full run (about 5-10 minutes)
    cd /work/main && python -m tests.bench --quick        # smoke run: smaller sizes, fewer repeats
    cd /work/main && python -m tests.bench --only B1,B4   # some of the benchmarks
    cd /work/main && python -m tests.bench --profile      # also cProfile the in-process calls

B1 cold start   `jacli grad "x^2*y + sin(z)*exp(x)" --at x=1,y=2,z=3` against a NumPy
                script printing the same gradient: whole processes.
B2 batch        the API's Jacobian of a 3->3 program over 1,000,000 points, and the
                gradient of a 10-input scalar program, against hand-written vectorized
                NumPy (and SymPy's lambdify, JAX's vmap(jacfwd/grad) when installed).
B3 end to end   `jacli jac -f PROGRAM --points 1M.csv --format csv > out` against the
                fastest Python script found for the same work (np.loadtxt, the
                hand-written Jacobian, CSV written with str() of nested lists: the same
                shortest-repr numbers); and the .npy equivalent against np.load/np.save.
                Also the compute of jacli's .npy path alone (its API calls, timed inside
                the real jacli process).
B4 scaling      jacli.compile (parse + tape) and program.grad (at one point) of
                1,000 / 10,000 / 100,000-operation programs, each step's growth per
                10x, and for the largest: against Lark's LALR building a parse tree of
                the same text with jacli's grammar.
B5 memory       peak RSS of `jacli grad ... --points N.csv --format csv` streaming
                1,000,000 and 10,000,000 rows (tests/bench/memory.py).
D2 Parquet      `jacli grad ... --points 1M.parquet -o out.parquet` against pyarrow + NumPy.
A1-A3 arrays    an MLP's gradient, softmax's Jacobian, a one-liner on an array
                (tests/bench/arrays.py).

Every timed comparison is interleaved (jacli and the reference alternate, and which
of the two goes first alternates too) and reported as the median, because the
machine may be shared; the load average is printed at the start and the end. Each
pair is checked to agree before it is timed. A benchmark that fails (a disagreement,
a crash) is reported as FAILED in the table and the run goes on; the exit status is
then 1. Targets not met do not change the exit status.
"""

from __future__ import annotations

import argparse
import cProfile
import compileall
import filecmp
import gc
import importlib.util
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
import traceback
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

import jacli
import jacli.grammar

from . import memory, parquet, structure

# --- the programs and their hand-written references ------------------------------------------

PROG3 = "u = x*y + sin(z)\nv = exp(x)*cos(y)\nw = x^2 + y*z\n"

# Source text, so the same function runs in-process and in the reference scripts.
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

# B3 .npy: np.load, the hand-written Jacobian, np.save; its compute time on stderr.
NPY_REF_SCRIPT = ("import sys\nimport time\nimport numpy as np\n" + REF3_SRC + r'''
points = np.load(sys.argv[1])
start = time.perf_counter()
value, J = ref3(points[:, 0], points[:, 1], points[:, 2])
compute = time.perf_counter() - start
np.save(sys.argv[2], J)
sys.stderr.write(f"BENCH-COMPUTE {compute!r} 1\n")
''')

# B3 CSV: the fastest reading and writing found on the development machine (1,000,000
# rows of x,y,z; 15,000,000 numbers out):
#   read:  np.loadtxt 0.22 s; np.fromstring(bytes, sep=",") 0.23 s; text.split + float()
#          0.33 s; text.split + np.array(dtype=float) 0.47 s; np.genfromtxt 2.2 s.
#   write: str() of nested lists (every float's repr formatted in C), in blocks of 16,384
#          rows 7.3 s, 65,536 rows 7.8 s, 262,144 rows 9.2 s, all at once 10.9 s;
#          ",".join(map(repr, row)) per row 9.0 s. (np.savetxt has no shortest-repr format.)
CSV_REF_SCRIPT = ("import sys\nimport numpy as np\n" + REF3_SRC + r'''
HEADER = "x,y,z,u,v,w," + ",".join(f"d{o}/d{i}" for o in "uvw" for i in "xyz")
ROWS = 1 << 14


def main(path):
    with open(path) as f:
        header = f.readline().strip()
    if header != "x,y,z":
        sys.exit(f"expected the columns x,y,z, got {header}")
    points = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, comments=None)
    value, J = ref3(points[:, 0], points[:, 1], points[:, 2])
    table = np.concatenate([points, value, J.reshape(len(points), 9)], axis=1)
    out = sys.stdout
    out.write(HEADER + "\n")
    for start in range(0, len(table), ROWS):
        text = str(table[start:start + ROWS].tolist())[2:-2]
        out.write(text.replace("], [", "\n").replace(", ", ",") + "\n")


main(sys.argv[1])
''')

# B3 .npy compute: the real jacli command line, in a process whose Program.jacobian
# (the API call behind `jacli jac`) adds up its own time; printed on stderr at exit.
HOOKED_JACLI = r'''
import atexit
import sys
import time

import jacli.api

_jacobian = jacli.api.Program.jacobian
_spent = [0.0, 0]


def _timed(self, *args, **kwargs):
    start = time.perf_counter()
    try:
        return _jacobian(self, *args, **kwargs)
    finally:
        _spent[0] += time.perf_counter() - start
        _spent[1] += 1


jacli.api.Program.jacobian = _timed
atexit.register(lambda: sys.stderr.write(f"BENCH-COMPUTE {_spent[0]!r} {_spent[1]}\n"))

from jacli.cli import main  # noqa: E402

sys.argv[0] = "jacli"
sys.exit(main())
'''


# --- helpers ---------------------------------------------------------------------------------

class BenchFailure(Exception):
    pass


def check_close(what: str, got, want, rtol: float = 1e-10, atol: float = 1e-12) -> None:
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        raise BenchFailure(f"{what}: jacli gives shape {got.shape}, the reference {want.shape}")
    if not np.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True):
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
            gc.collect()
            start = time.perf_counter()
            result = candidates[name]()
            times[name].append(time.perf_counter() - start)
            del result
    return times


def run_process(cmd: list[str], cwd: str, stdout_path: str | None = None) -> tuple[str, str]:
    """Run to completion; (stdout, stderr). With `stdout_path`, standard output goes to
    that file (as `> out` would) and "" is returned for it."""
    if stdout_path is None:
        proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    else:
        with open(Path(cwd, stdout_path), "wb") as out:
            proc = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise BenchFailure(f"`{shlex.join(cmd)}` exited with {proc.returncode}:\n"
                           f"{proc.stderr[-2000:]}")
    return proc.stdout or "", proc.stderr


def compute_seconds(stderr: str) -> tuple[float, int]:
    """The BENCH-COMPUTE line a reference script or the hooked jacli printed."""
    for line in stderr.splitlines():
        if line.startswith("BENCH-COMPUTE "):
            _, seconds, calls = line.split()
            return float(seconds), int(calls)
    raise BenchFailure(f"no BENCH-COMPUTE line in:\n{stderr[-2000:]}")


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
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


def fmt_value(value: float, unit: str) -> str:
    return fmt_time(value) if unit == "s" else f"{value / 2**20:.0f} MiB"


def spread(times: list[float]) -> str:
    return (f"median {fmt_time(statistics.median(times)):>9}  (min {fmt_time(min(times))}, "
            f"max {fmt_time(max(times))}, n={len(times)})")


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def profile(call, name: str, lines: int = 15) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    call()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(lines)
    print(f"  profile of one jacli call ({name}), by own time:")
    print("\n".join("    " + line for line in out.getvalue().strip().splitlines()))


# --- the results table -----------------------------------------------------------------------

@dataclass
class Row:
    """One line of the final table. `jacli` and `reference` are seconds (unit "s") or
    bytes (unit "B"); `limit` is the target: a ratio (kind "ratio") or seconds of jacli
    (kind "seconds"); no limit means the row is for information."""
    group: str
    name: str
    jacli: float | None = None
    reference: float | None = None
    ref_label: str = ""
    unit: str = "s"
    limit: float | None = None
    kind: str = "ratio"
    status: str = ""          # "", "skipped: why" or "FAILED: why"
    detail: str = ""

    @property
    def ratio(self) -> float | None:
        if self.jacli is None or not self.reference:
            return None
        return self.jacli / self.reference

    @property
    def target(self) -> str:
        if self.limit is None:
            return "(info)"
        return f"<= {self.limit:.1f}x" if self.kind == "ratio" else f"< {self.limit:g} s"

    @property
    def met(self) -> bool | None:
        if self.limit is None or self.jacli is None:
            return None
        if self.kind == "ratio":
            return self.ratio is not None and self.ratio <= self.limit
        return self.jacli < self.limit

    def cells(self) -> tuple[str, ...]:
        name = f"{self.group} {self.name}"
        if self.status:
            word = self.status.split(":")[0]
            return (name, word, "", "", self.target if word == "FAILED" else "",
                    "FAILED" if word == "FAILED" else "-")
        ref = fmt_value(self.reference, self.unit) if self.reference is not None else ""
        if ref and self.ref_label:
            ref += f" ({self.ref_label})"
        ratio = f"{self.ratio:.2f}x" if self.ratio is not None else ""
        met = {None: "-", True: "yes", False: "NO"}[self.met]
        return (name, fmt_value(self.jacli, self.unit), ref, ratio, self.target, met)


class Results:
    def __init__(self):
        self.rows: list[Row] = []

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        if row.status:
            print(f"  -> {row.group} {row.name}: {row.status}", flush=True)
        elif row.ratio is not None:
            print(f"  -> {row.group} {row.name}: jacli {fmt_value(row.jacli, row.unit)}, "
                  f"{row.ref_label or 'reference'} {fmt_value(row.reference, row.unit)}, "
                  f"ratio {row.ratio:.2f}x, target {row.target}", flush=True)
        else:
            print(f"  -> {row.group} {row.name}: jacli {fmt_value(row.jacli, row.unit)}, "
                  f"target {row.target}", flush=True)
        return row

    def compared(self, group: str, name: str, times: dict[str, list[float]], ref_label: str,
                 limit: float | None = None, detail: str = "") -> Row:
        """A row from interleaved timings: both medians, with the spread printed."""
        print(f"  jacli      {spread(times['jacli'])}")
        print(f"  reference  {spread(times['reference'])}  [{ref_label}]")
        return self.add(Row(group, name, statistics.median(times["jacli"]),
                            statistics.median(times["reference"]), ref_label, limit=limit,
                            detail=detail))

    def failed(self) -> bool:
        return any(r.status.startswith("FAILED") for r in self.rows)

    def print(self) -> None:
        header = ("benchmark", "jacli", "reference", "ratio", "target", "met?")
        body = [row.cells() for row in self.rows]
        widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
        line = "  ".join("-" * w for w in widths)
        left = (0, 2, 4)   # name, reference (has a label) and target read better flush left

        def fmt(cells):
            return "  ".join(c.ljust(w) if i in left else c.rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
        print(line)
        print(fmt(header))
        print(line)
        for cells in body:
            print(fmt(cells))
        print(line)
        for row in self.rows:
            if row.status:
                print(f"  {row.group} {row.name}: {row.status}")
            elif row.detail:
                print(f"  {row.group} {row.name}: {row.detail}")


# --- the machine -----------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def version_of(module: str) -> str:
    if importlib.util.find_spec(module) is None:
        return "not installed"
    try:
        return getattr(__import__(module), "__version__", "?")
    except Exception as error:   # installed but broken
        return f"unusable ({type(error).__name__})"


def machine_lines() -> list[str]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    return [
        f"machine:  {platform.platform()}; {cpu_model()}; os.cpu_count()={os.cpu_count()}, "
        f"usable={usable}",
        f"python:   {platform.python_version()} ({sys.executable})",
        f"versions: numpy {np.__version__}, lark {version_of('lark')}, "
        f"typer {version_of('typer')}, jacli {getattr(jacli, '__version__', '?')} "
        f"({Path(jacli.__file__).parent}); sympy {version_of('sympy')}, jax {version_of('jax')}",
    ]


# --- B1 cold start ---------------------------------------------------------------------------

def bench_b1(args, results: Results, rng, tmp: str) -> None:
    jacli_cmd = jacli_command() + ["grad", COLD_PROGRAM, "--at", COLD_AT]
    ref_cmd = [sys.executable, "-c", COLD_REF]
    print(f"B1 cold start: grad at one point, whole processes\n"
          f"  jacli:     {shlex.join(jacli_cmd)}\n"
          f"  reference: python -c <NumPy: import numpy, the gradient written out, print>",
          flush=True)
    if sys.flags.dont_write_bytecode:
        # Then an editable checkout is compiled from source on every run (about 15 ms),
        # which an installed jacli never is (pip compiles it) and an editable one is only
        # on its first run elsewhere. Compile it once, as that first run would.
        for package in (jacli, jacli.grammar):
            compileall.compile_dir(Path(package.__file__).parent, quiet=1)
        print("  PYTHONDONTWRITEBYTECODE is set: jacli's bytecode was compiled first")
    got = [float(v) for v in run_process(jacli_cmd, tmp)[0].split()]
    want = [float(v) for v in run_process(ref_cmd, tmp)[0].split()]
    check_close("B1 gradient", np.array(got), np.array(want))
    print(f"  agree: {got}")
    times = interleaved({"jacli": lambda: run_process(jacli_cmd, tmp),
                         "reference": lambda: run_process(ref_cmd, tmp)}, args.cold_repeats)
    results.compared("B1", "cold start, grad at 1 point (process)", times, "NumPy script",
                     limit=1.3, detail=f"whole processes, median of {args.cold_repeats} "
                     f"interleaved: jacli grad '{COLD_PROGRAM}' --at {COLD_AT} vs "
                     "python -c 'import numpy as np; ...print(gradient)'")


# --- B2 batch compute ------------------------------------------------------------------------

def sympy_runner(kind: str, arrays: list[np.ndarray]):
    """SymPy: differentiate symbolically, lambdify (NumPy, common subexpressions
    shared) once; the timed call evaluates and fills the same (B,m), (B,m,n) arrays."""
    import sympy as sp

    if kind == "jac3":
        syms = sp.symbols("x y z")
        x, y, z = syms
        outs = [x * y + sp.sin(z), sp.exp(x) * sp.cos(y), x**2 + y * z]
    else:
        syms = sp.symbols(" ".join(VARS10))
        outs = [sum(sp.sin(syms[i]) * syms[(i + 1) % N10] for i in range(N10))]
    m, n = len(outs), len(syms)
    entries = outs + [sp.diff(o, v) for o in outs for v in syms]
    f = sp.lambdify(syms, entries, modules="numpy", cse=True)
    batch = len(arrays[0])

    def run():
        r = f(*arrays)
        value, J = np.empty((batch, m)), np.empty((batch, m, n))
        for i in range(m):
            value[:, i] = r[i]
        for k in range(m * n):
            J[:, k // n, k % n] = r[m + k]
        return value, J
    return run


def jax_runner(kind: str, arrays: list[np.ndarray]):
    """JAX (float64): jit(vmap(jacfwd)) for 3->3, jit(vmap(value_and_grad)) for 10->1,
    on the points stacked (B, n) once; the timed call includes the copy back to NumPy."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    if kind == "jac3":
        def f(p):
            x, y, z = p[0], p[1], p[2]
            return jnp.stack([x * y + jnp.sin(z), jnp.exp(x) * jnp.cos(y), x * x + y * z])
        both = jax.jit(jax.vmap(lambda p: (f(p), jax.jacfwd(f)(p))))
    else:
        def f(p):
            return jnp.sum(jnp.sin(p) * jnp.roll(p, -1))
        both = jax.jit(jax.vmap(jax.value_and_grad(f)))
    points = jax.device_put(np.stack(arrays, axis=1))

    def run():
        value, J = both(points)
        value, J = np.asarray(value), np.asarray(J)
        if kind != "jac3":
            value, J = value[:, None], J[:, None, :]
        return value, J
    return run


def bench_b2_one(args, results: Results, kind: str, label: str, prog: jacli.Program,
                 arrays: list[np.ndarray], call, reference) -> None:
    res = call()
    value, J = reference()
    check_close(f"B2 {label} values", res.value, value)
    check_close(f"B2 {label} derivatives", res.jacobian, J)
    print("  agree with NumPy: values and derivatives (np.allclose, rtol=1e-10)")
    times = interleaved({"jacli": call, "reference": reference}, args.repeats)
    results.compared("B2", f"{label}, {args.points:,} pts (API)", times, "NumPy", limit=1.0,
                     detail="in-process compute: the API call vs the hand-written vectorized "
                     "NumPy, both returning values (B,m) and the Jacobian (B,m,n)")
    if args.profile:
        profile(call, f"B2 {label}")
    for tool, make in (("sympy", sympy_runner), ("jax", jax_runner)):
        name = f"{label} vs {'SymPy' if tool == 'sympy' else 'JAX'}"
        if importlib.util.find_spec(tool) is None:
            results.add(Row("B2", name, status=f"skipped: {tool} is not installed"))
            continue
        try:
            start = time.perf_counter()
            run = make(kind, arrays)
            tool_value, tool_J = run()     # also JAX's compilation
            setup = time.perf_counter() - start
            check_close(f"B2 {name} values", res.value, tool_value)
            check_close(f"B2 {name} derivatives", res.jacobian, tool_J)
            print(f"  {tool}: set-up (differentiate, lambdify/compile, first call) "
                  f"{fmt_time(setup)}; agrees (np.allclose, rtol=1e-10)")
            times = interleaved({"jacli": call, "reference": run}, args.repeats)
            results.compared("B2", name, times, "SymPy" if tool == "sympy" else "JAX",
                             detail=f"compute only; {tool}'s one-time set-up "
                             f"{fmt_time(setup)} not counted")
        except BenchFailure:
            raise
        except Exception as error:   # the optional tool itself failed: say so, go on
            results.add(Row("B2", name, status=f"skipped: {tool} failed: "
                            f"{type(error).__name__}: {error}"))


def bench_b2(args, results: Results, rng, tmp: str) -> None:
    print(f"B2 batch compute, {args.points:,} points, in process\n"
          f"  3->3:  {PROG3.strip().replace(chr(10), '; ')}", flush=True)
    prog3 = jacli.compile(PROG3)
    xyz = [rng.uniform(-2.0, 2.0, args.points) for _ in range(3)]
    point3 = dict(zip("xyz", xyz))
    guarded(results, "B2", "jacobian 3->3", lambda: bench_b2_one(
        args, results, "jac3", "jacobian 3->3", prog3, xyz,
        lambda: prog3.jacobian(point3, wrt=["x", "y", "z"]), lambda: ref3(*xyz)))
    print("  10->1: f = sum_i sin(x_i)*x_(i+1 mod 10)", flush=True)
    prog10 = jacli.compile(PROG10)
    xs = [rng.uniform(-2.0, 2.0, args.points) for _ in range(N10)]
    point10 = dict(zip(VARS10, xs))
    guarded(results, "B2", "gradient 10->1", lambda: bench_b2_one(
        args, results, "grad10", "gradient 10->1", prog10, xs,
        lambda: prog10.grad(point10, wrt=VARS10), lambda: ref10(xs)))


# --- B3 batch end to end ---------------------------------------------------------------------

def bench_b3(args, results: Results, rng, tmp: str) -> None:
    jac = jacli_command()
    Path(tmp, "prog.jac").write_text(PROG3)
    Path(tmp, "ref_csv.py").write_text(CSV_REF_SCRIPT)
    Path(tmp, "ref_npy.py").write_text(NPY_REF_SCRIPT)
    Path(tmp, "hooked_jacli.py").write_text(HOOKED_JACLI)
    guarded(results, "B3", "CSV end to end", lambda: bench_b3_csv(args, results, rng, tmp, jac))
    guarded(results, "B3", ".npy end to end", lambda: bench_b3_npy(args, results, rng, tmp, jac))


def bench_b3_csv(args, results: Results, rng, tmp: str, jac: list[str]) -> None:
    points = rng.uniform(-2.0, 2.0, (args.points, 3))
    with open(Path(tmp, "pts.csv"), "w") as f:
        f.write("x,y,z\n")
        np.savetxt(f, points, delimiter=",", fmt="%.6f")
    jacli_cmd = jac + ["jac", "-f", "prog.jac", "--points", "pts.csv", "--format", "csv"]
    ref_cmd = [sys.executable, "ref_csv.py", "pts.csv"]
    print(f"B3 batch end to end, CSV, {args.points:,} points ({fmt_size(Path(tmp, 'pts.csv'))})\n"
          f"  jacli:     {shlex.join(jacli_cmd)} > out.csv\n"
          f"  reference: {shlex.join(ref_cmd)} > out_ref.csv   (np.loadtxt, ref3, str() of "
          f"nested lists in blocks of 16,384 rows)", flush=True)
    run_process(jacli_cmd, tmp, "out.csv")
    run_process(ref_cmd, tmp, "out_ref.csv")
    out, out_ref = Path(tmp, "out.csv"), Path(tmp, "out_ref.csv")
    if filecmp.cmp(out, out_ref, shallow=False):
        agree = "byte-identical"
    else:
        headers = [p.open().readline().strip() for p in (out, out_ref)]
        if headers[0] != headers[1]:
            raise BenchFailure(f"B3 CSV: headers differ:\n  jacli:     {headers[0]}\n"
                               f"  reference: {headers[1]}")
        check_close("B3 CSV output", np.loadtxt(out, delimiter=",", skiprows=1),
                    np.loadtxt(out_ref, delimiter=",", skiprows=1))
        agree = "same header, numbers agree (np.allclose, rtol=1e-10) but not byte-identical"
    print(f"  agree: out.csv and out_ref.csv ({fmt_size(out)}) are {agree}")
    times = interleaved({"jacli": lambda: run_process(jacli_cmd, tmp, "out.csv"),
                         "reference": lambda: run_process(ref_cmd, tmp, "out_ref.csv")},
                        args.csv_repeats)
    results.compared("B3", f"CSV end to end, {args.points:,} pts", times, "Python+NumPy",
                     limit=1.5, detail=f"whole processes, stdout to a file; outputs {agree}; "
                     f"median of {args.csv_repeats}")
    for name in ("out.csv", "out_ref.csv", "pts.csv"):
        Path(tmp, name).unlink()


def bench_b3_npy(args, results: Results, rng, tmp: str, jac: list[str]) -> None:
    np.save(Path(tmp, "pts.npy"), rng.uniform(-2.0, 2.0, (args.points, 3)))
    jac_args = ["jac", "-f", "prog.jac", "--wrt", "x,y,z", "--points", "pts.npy", "-o", "J.npy"]
    jacli_cmd = jac + jac_args
    ref_cmd = [sys.executable, "ref_npy.py", "pts.npy", "J_ref.npy"]
    hooked_cmd = [sys.executable, "hooked_jacli.py"] + jac_args
    print(f"B3 batch end to end, .npy, {args.points:,} points\n"
          f"  jacli:     {shlex.join(jacli_cmd)}\n"
          f"  reference: {shlex.join(ref_cmd)}   (np.load, ref3, np.save)\n"
          f"  compute:   {shlex.join(hooked_cmd)}   (jacli's own main(), Program.jacobian "
          "timed)", flush=True)
    run_process(jacli_cmd, tmp)
    run_process(ref_cmd, tmp)
    check_close("B3 J.npy", np.load(Path(tmp, "J.npy")), np.load(Path(tmp, "J_ref.npy")))
    print("  agree: J.npy and J_ref.npy (np.allclose, rtol=1e-10)")
    ref_compute: list[float] = []

    def reference():
        ref_compute.append(compute_seconds(run_process(ref_cmd, tmp)[1])[0])
    times = interleaved({"jacli": lambda: run_process(jacli_cmd, tmp), "reference": reference},
                        args.cli_repeats)
    results.compared("B3", f".npy end to end, {args.points:,} pts", times, "NumPy script",
                     detail="whole processes: jacli jac ... --points pts.npy -o J.npy vs "
                     "python ref_npy.py (np.load, ref3, np.save)")
    jacli_compute, calls = [], 0
    for _ in range(args.cli_repeats):
        seconds, calls = compute_seconds(run_process(hooked_cmd, tmp)[1])
        jacli_compute.append(seconds)
    check_close("B3 J.npy (hooked run)", np.load(Path(tmp, "J.npy")),
                np.load(Path(tmp, "J_ref.npy")))
    print(f"  jacli compute      {spread(jacli_compute)}  ({calls} API calls per run)")
    print(f"  reference compute  {spread(ref_compute)}  [ref3 inside ref_npy.py]")
    results.add(Row("B3", f".npy compute (API only), {args.points:,} pts",
                    statistics.median(jacli_compute), statistics.median(ref_compute), "NumPy",
                    limit=0.5, kind="seconds",
                    detail=f"time inside Program.jacobian in the real jacli .npy run "
                    f"({calls} calls, one per chunk of points) vs ref3 in the reference "
                    "script; the target is jacli's absolute time"))
    for name in ("pts.npy", "J.npy", "J_ref.npy"):
        Path(tmp, name).unlink()


def fmt_size(path: Path) -> str:
    return f"{path.stat().st_size / 2**20:.0f} MiB"


# --- B4 scaling ------------------------------------------------------------------------------

B4_VARIABLES = 100


def scaling_program(operations: int) -> tuple[str, list[tuple[int, int, int]]]:
    """f = 1*x0*x1 + 2*x1*x8 + ...: operations/3 terms c*x_i*x_j of 3 operations each
    (2 multiplications and an addition), over 100 variables; every coefficient differs,
    so no two terms are the same expression. Also the (c, i, j) of each term."""
    terms = [(t + 1, t % B4_VARIABLES, (7 * t + 1) % B4_VARIABLES)
             for t in range(operations // 3)]
    return "f = " + " + ".join(f"{c}*x{i}*x{j}" for c, i, j in terms) + "\n", terms


def scaling_reference(terms, x: np.ndarray) -> np.ndarray:
    c, i, j = (np.array(column) for column in zip(*terms))
    gradient = np.zeros(len(x))
    np.add.at(gradient, i, c * x[j])
    np.add.at(gradient, j, c * x[i])
    return gradient


def bench_b4(args, results: Results, rng, tmp: str) -> None:
    from lark import Lark

    grammar = resources.files("jacli.grammar").joinpath("jacli.lark").read_text()
    lark = Lark(grammar, parser="lalr", start="program")
    jacli.compile("x + 1")      # jacli's parser is built once per process: not timed
    sizes = args.scale_sizes
    print(f"B4 scaling: compile (parse + tape) and grad at one point of "
          f"{', '.join(f'{s:,}' for s in sizes)}-operation programs; "
          f"f = sum of c*x_i*x_j over {B4_VARIABLES} variables\n"
          f"  Lark tree: Lark(jacli.lark, parser='lalr', start='program').parse(text)",
          flush=True)
    x = 1.0 + np.arange(B4_VARIABLES) / B4_VARIABLES
    names = [f"x{k}" for k in range(B4_VARIABLES)]
    point = dict(zip(names, x.tolist()))
    measured: dict[int, dict[str, float]] = {}
    print(f"  {'operations':>10} {'chars':>9} {'tape':>8} {'compile':>10} {'grad':>10} "
          f"{'both':>10} {'Lark tree':>10} {'both/Lark':>9}")
    for size in sizes:
        source, terms = scaling_program(size)
        repeats = args.scale_repeats if size < 100_000 else max(1, args.scale_repeats - 2)
        program = jacli.compile(source)
        got = program.grad(point, wrt=names).gradient
        check_close(f"B4 gradient, {size:,} operations", got, scaling_reference(terms, x),
                    rtol=1e-9)
        lark.parse(source)        # it parses; the tree is thrown away
        steps: dict[str, list[float]] = {"compile": [], "grad": [], "lark": []}

        def jacli_steps():
            start = time.perf_counter()
            compiled = jacli.compile(source)
            middle = time.perf_counter()
            compiled.grad(point, wrt=names)
            steps["compile"].append(middle - start)
            steps["grad"].append(time.perf_counter() - middle)

        def lark_tree():
            start = time.perf_counter()
            lark.parse(source)
            steps["lark"].append(time.perf_counter() - start)
        interleaved({"jacli": jacli_steps, "reference": lark_tree}, repeats)
        med = {key: statistics.median(v) for key, v in steps.items()}
        med["both"] = statistics.median(c + g for c, g in zip(steps["compile"], steps["grad"]))
        measured[size] = med
        print(f"  {size:>10,} {len(source):>9,} {len(program.tape.nodes):>8,} "
              f"{fmt_time(med['compile']):>10} {fmt_time(med['grad']):>10} "
              f"{fmt_time(med['both']):>10} {fmt_time(med['lark']):>10} "
              f"{med['both'] / med['lark']:>8.2f}x   (median of {repeats})", flush=True)
        if args.profile and size == sizes[-1]:
            profile(lambda: jacli.compile(source), f"B4 compile, {size:,} operations")
            profile(lambda p=program: p.grad(point, wrt=names), f"B4 grad, {size:,} operations")
        del program
    for small, large in zip(sizes, sizes[1:]):
        step = large / small
        for key, what in (("compile", "compile (parse+tape)"), ("grad", "grad at 1 point")):
            results.add(Row("B4", f"{what} {short(small)}->{short(large)} ops",
                            measured[large][key], measured[small][key], f"{short(small)} ops",
                            limit=12.0 * step / 10 if large == sizes[-1] else None,
                            detail=f"growth for {step:g}x the operations (linear = {step:g}x)"))
    largest = sizes[-1]
    results.add(Row("B4", f"compile+grad vs Lark tree, {short(largest)} ops",
                    measured[largest]["both"], measured[largest]["lark"], "Lark tree",
                    limit=1.0, detail="jacli.compile + program.grad at one point vs Lark LALR "
                    "building a parse tree (no tape, no derivative) of the same text"))


def short(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 and n < 1_000_000 else f"{n / 1e6:g}M"


# --- B5 memory -------------------------------------------------------------------------------

def bench_b5(args, results: Results, rng, tmp: str) -> None:
    rows = args.memory_rows
    command = jacli_command() + ["grad", memory.PROGRAM, "--points", "POINTS.csv",
                                 "--format", "csv"]
    print(f"B5 memory: peak RSS streaming {' and '.join(f'{r:,}' for r in rows)} rows\n"
          f"  jacli: {shlex.join(command)} > /dev/null   (tests/bench/memory.py)", flush=True)
    measured = []
    for count in rows:
        path = Path(tmp, f"points_{count}.csv")
        start = time.perf_counter()
        memory.write_points(path, count)
        written = time.perf_counter() - start
        size = fmt_size(path)
        try:
            seconds, rss = memory.peak_rss([str(path) if a == "POINTS.csv" else a
                                            for a in command])
        except SystemExit as error:
            raise BenchFailure(f"B5: {error}") from None
        finally:
            path.unlink()
        measured.append((count, seconds, rss))
        print(f"  {count:>12,} rows ({size}, written in {written:.0f} s): {seconds:6.1f} s, "
              f"peak RSS {rss / 2**20:7.1f} MiB", flush=True)
    (low, low_s, low_rss), (high, high_s, high_rss) = measured[0], measured[-1]
    results.add(Row("B5", f"peak RSS {short(high)} vs {short(low)} rows", high_rss, low_rss,
                    f"{short(low)} rows", unit="B", limit=1.2,
                    detail=f"streamed CSV in, CSV out; ru_maxrss of jacli started by a "
                    "small launcher (memory.peak_rss), so this runner's own RSS, which a "
                    "child inherits as its starting peak, is not counted; wall time "
                    f"{low_s:.1f} s for {short(low)} rows, {high_s:.1f} s for {short(high)}"))


# --- main ------------------------------------------------------------------------------------

sys.modules.setdefault("tests.bench.__main__", sys.modules[__name__])   # for the modules below
from . import arrays  # noqa: E402  (A1-A3 take the helpers above)

BENCHMARKS = {"B1": bench_b1, "B2": bench_b2, "B3": bench_b3, "B4": bench_b4, "B5": bench_b5,
              **arrays.BENCHMARKS, "D2": parquet.bench_d2,
              **structure.BENCHMARKS}   # S0-S2: sparsity and colouring (structure.py)
BENCHMARKS.update(__import__("tests.bench.datasets", fromlist=["*"]).BENCHMARKS)  # D1, D4


def guarded(results: Results, group: str, name: str, body) -> None:
    """Run one benchmark; a failure becomes a FAILED row and the run goes on."""
    try:
        body()
    except BenchFailure as error:
        print(f"  FAILED: {error}", file=sys.stderr, flush=True)
        results.add(Row(group, name, status=f"FAILED: {str(error).splitlines()[0]}"))
    except Exception as error:
        traceback.print_exc()
        results.add(Row(group, name, status=f"FAILED: {type(error).__name__}: {error}"))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 100,000 points, B5 at 100,000 and 1,000,000 rows, "
                        "fewer repetitions")
    parser.add_argument("--only", metavar="B1,B4",
                        help="run only these benchmarks (of B1, B2, B3, B4, B5, A1, A2, A3)")
    parser.add_argument("--points", type=int,
                        help="points for B2 and B3 (default 1,000,000; 100,000 with --quick)")
    parser.add_argument("--repeats", type=int, help="B2 repetitions (default 9; 5 quick)")
    parser.add_argument("--cli-repeats", type=int,
                        help="B3 .npy repetitions (default 7; 3 quick)")
    parser.add_argument("--csv-repeats", type=int,
                        help="B3 CSV repetitions (default 5; 3 quick)")
    parser.add_argument("--cold-repeats", type=int,
                        help="B1 repetitions (default 11; 9 quick)")
    parser.add_argument("--scale-repeats", type=int,
                        help="B4 repetitions below 100,000 operations, two fewer at 100,000 "
                        "(default 5; 3 quick)")
    parser.add_argument("--scale-sizes", default="1000,10000,100000",
                        help="B4 program sizes in operations (default 1000,10000,100000)")
    parser.add_argument("--memory-rows", help="B5 rows (default 1000000,10000000; "
                        "100000,1000000 quick)")
    parser.add_argument("--profile", action="store_true",
                        help="also print a cProfile of the in-process jacli calls (B2, B4)")
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args(argv)
    defaults = {"points": (1_000_000, 100_000), "repeats": (9, 5), "cli_repeats": (7, 3),
                "csv_repeats": (5, 3), "cold_repeats": (21, 9), "scale_repeats": (5, 3),
                "memory_rows": ("1000000,10000000", "100000,1000000")}
    for attr, (full, quick) in defaults.items():
        if getattr(args, attr) is None:
            setattr(args, attr, quick if args.quick else full)
    try:
        args.memory_rows = [int(r) for r in str(args.memory_rows).split(",")]
        args.scale_sizes = [int(s) for s in args.scale_sizes.split(",")]
    except ValueError:
        parser.error("--memory-rows and --scale-sizes take numbers separated by commas")
    if len(args.memory_rows) < 2 or len(args.scale_sizes) < 2:
        parser.error("--memory-rows and --scale-sizes need at least two sizes")
    selected = [b.strip().upper() for b in (args.only or ",".join(BENCHMARKS)).split(",")
                if b.strip()]
    unknown = [b for b in selected if b not in BENCHMARKS]
    if unknown or not selected:
        parser.error(f"--only: unknown benchmark {', '.join(unknown) or '(none given)'}; "
                     f"choose from {', '.join(BENCHMARKS)}")
    args.only = [b for b in BENCHMARKS if b in selected]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    print(f"command:  python -m tests.bench {shlex.join(sys.argv[1:] if argv is None else argv)}")
    for line in machine_lines():
        print(line)
    load_at_start = load_average()
    print(f"mode:     {'quick' if args.quick else 'full'}; running {', '.join(args.only)}; "
          f"load average at start {load_at_start}")
    print(flush=True)
    rng = np.random.default_rng(args.seed)
    results = Results()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="jacli-bench-") as tmp:
        for name in args.only:
            guarded(results, name, "(set-up)",
                    lambda bench=BENCHMARKS[name]: bench(args, results, rng, tmp))
            print(flush=True)
    print(f"jacli benchmarks ({'quick' if args.quick else 'full'} run): medians; ratio = "
          f"jacli / reference; total {time.perf_counter() - started:.0f} s")
    results.print()
    for line in machine_lines():
        print(line)
    print(f"load:     load average (1, 5, 15 min) at start {load_at_start}, "
          f"at end {load_average()}")
    return 1 if results.failed() else 0


if __name__ == "__main__":
    sys.exit(main())

"""The command line: parse options, call the library, hand results to a writer.

Exit status: 0 success; 1 evaluation ran but some rows of --points failed;
2 the command line or the program is wrong (one message, no traceback).
"""

from __future__ import annotations

import gc
import inspect
import os
import signal
import sys
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Iterator, Optional

# Until main() runs, Ctrl-C (while NumPy and the rest load) ends quietly with 130.
signal.signal(signal.SIGINT, lambda *_: os._exit(130))
# jacli's work is elementwise: BLAS threads only cost start-up time (~20 ms on 2 cores).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# The cycle collector would run dozens of times while NumPy and typer load, finding no
# garbage: about 2 ms of a one-point run. It is held only for these imports (as
# tape.paused_gc does; importing that would load NumPy first).
_collecting = gc.isenabled()
gc.disable()
try:
    import numpy as np
    import typer

    from . import __version__
    from .api import CHUNK, Program
    from .check import DEFAULT_ATOL, DEFAULT_RTOL
    from .errors import JacliError, shorten
    from .prims import CONSTANTS, FUNCTIONS
    from .formats import TEXT_WRITERS, Report, save_npy, save_npz
    from .points import Points, PointsReader, parse_at
finally:
    if _collecting:
        gc.enable()


class Format(str, Enum):
    auto = "auto"
    table = "table"
    plain = "plain"
    json = "json"
    csv = "csv"


class PointsFormat(str, Enum):
    csv = "csv"
    jsonl = "jsonl"
    npy = "npy"


ProgramArg = Annotated[Optional[str], typer.Argument(
    metavar="PROGRAM", help="The program text, e.g. 'x^2*y + sin(z)'. Or use -f.",
    show_default=False)]
FileOpt = Annotated[Optional[str], typer.Option(
    "--file", "-f", metavar="PATH", help="Read the program from PATH ('-' for standard input).")]
AtOpt = Annotated[Optional[list[str]], typer.Option(
    "--at", metavar="NAME=VALUE,...", help="Values of variables, e.g. x=1,y=2 (repeatable). "
    "With --points, shared by every point.")]
PointsOpt = Annotated[Optional[str], typer.Option(
    "--points", metavar="PATH", help="Many points: CSV with a header, JSON Lines, or .npy "
    "(columns in --wrt order); '-' reads CSV from standard input.")]
PointsFormatOpt = Annotated[Optional[PointsFormat], typer.Option(
    "--points-format", help="Format of --points when its ending does not tell.")]
WrtOpt = Annotated[Optional[str], typer.Option(
    "--wrt", metavar="X,Y", help="The inputs to differentiate with respect to, in order "
    "(default: the free variables, in order of first appearance).")]
OutOpt = Annotated[Optional[list[str]], typer.Option(
    "--out", metavar="NAME", help="Which outputs, in order (repeatable; default: all).")]
FormatOpt = Annotated[Format, typer.Option(
    "--format", help="auto: table on a terminal, plain otherwise.")]
OutputOpt = Annotated[Optional[str], typer.Option(
    "--output", "-o", metavar="PATH", help="Write results to PATH (.csv, .jsonl, .txt, "
    ".npy, .npz) instead of standard output.")]
TextOutputOpt = Annotated[Optional[str], typer.Option(
    "--output", "-o", metavar="PATH", help="Write to PATH instead of standard output.")]
AllowUnusedOpt = Annotated[bool, typer.Option(
    "--allow-unused", help="Accept --at values for variables the program does not use.")]

EXAMPLES = {
    "eval": ["jacli eval 'r = sqrt(x^2 + y^2); theta = atan2(y, x)' --at x=3,y=4",
             "jacli eval -f samples/rosenbrock.jac --at a=1,b=100 --points samples/points.csv --format csv"],
    "grad": ["jacli grad 'x^2*y + sin(z)' --at x=1,y=2,z=3",
             "jacli grad -f samples/logistic_loss.jac --wrt w1,w2,b --at x1=0.5,x2=-1,y=1,"
             "w1=0.1,w2=0.2,b=0",
             "read gx gy <<< \"$(jacli grad 'x*y' --at x=2,y=3)\""],
    "jac": ["jacli jac 'r = sqrt(x^2+y^2); theta = atan2(y, x)' --at x=3,y=4",
            "jacli jac -f samples/robot_arm.jac --wrt q1,q2 --at l1=1,l2=0.8 --points angles.npy "
            "-o J.npy",
            "jacli jac 'u = x^2; v = x^3; w = sin(x)' --at x=2 --mode forward"],
    "hess": ["jacli hess 'x^2*y + sin(z)' --at x=1,y=2,z=3",
             "jacli hess -f samples/rosenbrock.jac --wrt x,y --at x=1,y=1,a=1,b=100 --format json"],
    "jvp": ["jacli jvp 'r = sqrt(x^2+y^2); theta = atan2(y, x)' --at x=3,y=4 --tangent x=1,y=0"],
    "vjp": ["jacli vjp 'r = sqrt(x^2+y^2); theta = atan2(y, x)' --at x=3,y=4 "
            "--cotangent r=1,theta=0"],
    "check": ["jacli check 'x^2*y + sin(z)' --at x=1,y=2,z=3",
              "jacli check 'relu(x)' --at x=0     # exits 1: a kink",
              "jacli check -f samples/rosenbrock.jac --wrt x,y --at a=1,b=100 "
              "--points samples/points.csv --format json"],
    "diff": ["jacli diff 'x^2*sin(x)'",
             "jacli diff -f samples/polar.jac --format latex",
             "jacli diff -f samples/rosenbrock.jac --wrt x,y | jacli eval -f - --at x=1,y=2,a=1,b=100",
             "jacli diff 'x^2*y + sin(z)' --order 2"],
    "graph": ["jacli graph 'x^2*y + sin(z)' | dot -Tsvg > graph.svg",
              "jacli graph -f samples/softmax.jac --format mermaid",
              "jacli graph 'x*y + sin(x)' --at x=1,y=2"],
    "tape": ["jacli tape 'x^2*y + sin(z)' --at x=1,y=2,z=3",
             "jacli tape 'sin(x)*x' --at x=2 --format json | jq -c ."],
}


def _epilog(command: str) -> str:
    # "\b" keeps click from re-wrapping the example lines.
    return "Examples:\n\n\b\n" + "\n".join(f"  $ {line}" for line in EXAMPLES[command])


def _version(value: bool) -> None:
    if value:
        print(f"jacli {__version__}")
        raise typer.Exit()


def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")]
        = False) -> None:
    pass


# --- reading the program and the points ----------------------------------------------------

#: The longest program file: 16 MiB (a 5 MB program of real terms takes ~0.55 GB).
PROGRAM_LIMIT = 1 << 24


def _read_program(program: str | None, file: str | None) -> str:
    if program is not None and file is not None:
        raise JacliError("give the program either as an argument or with -f, not both",
                         origin="command line")
    if program is not None:
        return program
    if file is None:
        raise JacliError("no program: give it as an argument or with -f PATH",
                         origin="command line")
    try:
        if file == "-":
            data = sys.stdin.buffer.read(PROGRAM_LIMIT + 1)
        else:
            with open(file, "rb") as f:
                data = f.read(PROGRAM_LIMIT + 1)
    except OSError as error:
        raise JacliError(f"cannot read program file {file}: {error.strerror}",
                         origin="-f") from None
    if len(data) > PROGRAM_LIMIT:   # (-f /dev/zero would fill the memory)
        name = "standard input" if file == "-" else f"program file {file}"
        raise JacliError(f"{name} is longer than {PROGRAM_LIMIT:,} bytes: a program "
                         "is at most 16 MiB", origin="-f")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise JacliError(f"program file {file} is not UTF-8 text "
                         f"(byte {error.start} is {data[error.start]:#04x})", origin="-f") from None


def _split(names: str | None) -> list[str] | None:
    if names is None:
        return None
    return [n.strip() for n in names.split(",") if n.strip()]


def _names(items: list[str] | None) -> list[str] | None:
    """`--out a,b --out c` -> [a, b, c]."""
    if not items:
        return None
    return [name for item in items for name in _split(item)]


#: The numbers that one chunk's results may hold (8 MiB of them: 64 MB).
RESULT_FLOATS = 1 << 23


class _Job:
    """What a command was asked: the program, its selections and its points."""

    def __init__(self, command: str, options: dict):
        self.command, self.options = command, options
        if options["file"] == "-" and options.get("points") == "-":
            raise JacliError("-f - and --points - cannot both read standard input",
                             origin="command line")
        self.source = _read_program(options["program"], options["file"])
        self.program = Program(self.source)
        self.outputs = self.program.select_outputs(_names(options["out"]))
        if command in ("grad", "hess") and len(self.outputs) != 1:
            raise JacliError(f"{command} needs one scalar output, and there are "
                             f"{len(self.outputs)} ({', '.join(self.outputs)}): choose one "
                             "with --out, or use jac", origin="--out")
        wrt = options.get("wrt")
        wrt_names = _split(wrt)
        if wrt is not None and not wrt_names:
            raise JacliError("no variable named: give --wrt x,y,...", origin="--wrt")
        self.inputs = self.program.select_inputs(wrt_names, self.outputs)
        self.at = parse_at(options.get("at") or [])
        unused = self.program.unused(self.at)
        for name in unused:
            if name in CONSTANTS or name in FUNCTIONS:
                kind = "constant" if name in CONSTANTS else "function"
                raise JacliError(f"'{name}' is a {kind}, not a variable: it cannot be given a "
                                 "value", origin="--at")
        if unused and not options.get("allow_unused"):
            known = shorten(", ".join(self.program.variables), 200) or "none"
            raise JacliError(f"'{shorten(unused[0])}' is not used by the program "
                             f"(its variables: {known})",
                             origin="--at", hint="leave it out, or pass --allow-unused")
        seed_option = {"jvp": "tangent", "vjp": "cotangent"}.get(command)
        if seed_option:  # the tangent v of J.v, or the cotangent u of u^T.J
            if not options[seed_option]:
                raise JacliError(f"{command} needs --{seed_option}, e.g. --{seed_option} "
                                 f"{(self.inputs if command == 'jvp' else self.outputs)[0]}=1",
                                 origin=f"--{seed_option}")
            self.seed = parse_at(options[seed_option], f"--{seed_option}")
        path, self.reader = options.get("points"), None
        if path:
            fmt = options.get("points_format")
            required = [v for v in self.program.needed_variables(self.outputs)
                        if v not in self.at]
            self.reader = PointsReader(path, fmt.value if fmt else None, self.program.variables,
                                       required, [v for v in self.inputs if v not in self.at],
                                       shared=list(self.at))

    def chunks(self) -> Iterator[Points | None]:
        """The points in chunks (None: the single point of --at), each small enough that
        its results stay within RESULT_FLOATS numbers (a Hessian has n^2 per row)."""
        if self.reader is None:
            yield None
            return
        m, n = len(self.outputs), len(self.inputs)
        width = 1 + m + {"jac": m * n, "grad": n, "hess": n + n * n, "vjp": n,
                         "jvp": m, "check": 8 * m * n}.get(self.command, 0)
        rows = max(1, RESULT_FLOATS // width)
        for points in self.reader.chunks():
            yield from points.split(rows)

    def bindings(self, points: Points | None) -> tuple[dict[str, np.ndarray],
                                                      np.ndarray | None, int]:
        """The good rows' values of every variable, the good-row mask (None when every
        row is good) and the row count."""
        if points is None:
            return {n: np.array([v]) for n, v in self.at.items()}, None, 1
        columns = {n: c for n, c in points.columns.items() if n in self.program.variables}
        mask, good = None, points.count
        if points.bad_rows:
            mask = points.good_mask()
            columns = {n: c[mask] for n, c in columns.items()}
            good = int(mask.sum())
        columns.update({n: np.full(good, v) for n, v in self.at.items()})
        return columns, mask, points.count

    def _call_api(self, values: dict):
        """The library call behind each command."""
        program, options = self.program, self.options
        if self.command == "eval":
            return program.eval(values, self.outputs)
        if self.command == "jac":
            return program.jacobian(values, self.inputs, self.outputs,
                                    mode=options["mode"].value)
        if self.command == "hess":
            return program.hessian(values, self.inputs, self.outputs[0])
        if self.command == "jvp":
            return program.jvp(values, self.seed, self.outputs)
        if self.command == "vjp":
            return program.vjp(values, self.seed, self.inputs, self.outputs)
        return program.jacobian(values, self.inputs, self.outputs)  # grad

    def at_table(self, values: dict, mask: np.ndarray | None,
                 count: int) -> tuple[list[str], np.ndarray]:
        """The variables shown with each of `count` rows, and their values (B, k), bad
        rows nan."""
        needed = self.program.needed_variables(self.outputs)
        variables = [v for v in self.program.variables if v in values or v in needed]
        good = count if mask is None else int(mask.sum())
        at = np.empty((good, len(variables)))
        for j, name in enumerate(variables):
            at[:, j] = values.get(name, np.nan)
        return variables, at if mask is None else _scatter(at, mask)

    def reports(self) -> Iterator[tuple[Report, list]]:
        """The results, chunk by chunk, with each chunk's domain warnings."""
        for points in self.chunks():
            yield self.run(points)

    def run(self, points: Points | None) -> tuple[Report, list]:
        values, mask, count = self.bindings(points)
        good = count if mask is None else int(mask.sum())
        variables, at = self.at_table(values, mask, count)
        m, n = len(self.outputs), len(self.inputs)
        shapes = {"value": (m,), "jacobian": (m, n), "hessian": (n, n), "jvp": (m,), "vjp": (n,)}
        arrays: dict[str, np.ndarray | None] = dict.fromkeys(shapes)
        warnings, inputs = [], self.inputs
        if good:  # (a program without variables gives one unbatched point: broadcast it)
            result = self._call_api(values)
            warnings, inputs = result.warnings, result.inputs
            for key, shape in shapes.items():
                if getattr(result, key) is not None:
                    arrays[key] = np.broadcast_to(getattr(result, key), (good,) + shape)
        for key in ("value",) + _ARRAYS_OF[self.command]:
            if arrays[key] is None:   # no good rows at all
                arrays[key] = np.empty((0,) + shapes[key])
        if mask is not None:  # bad rows keep their place, as nan
            arrays = {key: a if a is None else _scatter(a, mask) for key, a in arrays.items()}
        bad = points.bad_rows if points else {}
        return Report(self.command, inputs, self.outputs, variables, at, arrays["value"],
                      arrays["jacobian"], bad, arrays["hessian"], arrays["jvp"],
                      arrays["vjp"], points.first_row if points else 0), warnings


#: The result arrays of each command besides `value`.
_ARRAYS_OF = {"eval": (), "grad": ("jacobian",), "jac": ("jacobian",),
              "hess": ("jacobian", "hessian"), "jvp": ("jvp",), "vjp": ("vjp",)}


def _scatter(rows: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The good rows put back in place among all rows; bad rows are nan."""
    full = np.full((len(mask),) + rows.shape[1:], np.nan)
    full[mask] = rows
    return full


# --- writing -----------------------------------------------------------------------------

_FORMAT_BY_SUFFIX = {".csv": "csv", ".jsonl": "json", ".json": "json", ".txt": "plain"}


def _resolve_format(fmt: Format, output: str | None) -> str:
    if fmt is not Format.auto:
        return fmt.value
    if output is not None:
        return _FORMAT_BY_SUFFIX.get(Path(output).suffix.lower(), "plain")
    return "table" if sys.stdout.isatty() else "plain"


@contextmanager
def _atomic_output(path: str, binary: bool = False):
    """A file that appears under `path` only once it is completely written.

    A symlink is followed; a FIFO or device (`-o /dev/stdout`) is written directly."""
    if not path:
        raise JacliError("the output path is empty", origin="-o")
    import tempfile

    target = Path(os.path.realpath(path))
    mode, newline = ("wb", None) if binary else ("w", "\n")
    if target.exists() and not target.is_file():
        try:
            with open(target, mode, newline=newline) as f:
                yield f
        except OSError as error:
            raise JacliError(f"cannot write {path}: {error.strerror}", origin="-o") from None
        return
    try:
        handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                        dir=target.parent)
    except OSError as error:
        raise JacliError(f"cannot write {path}: {error.strerror}", origin="-o") from None
    try:
        with os.fdopen(handle, mode, newline=newline) as f:
            yield f
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)  # as a plain open() would create it, not mkstemp's 0600
        os.replace(temp, target)
    except OSError as error:
        raise JacliError(f"cannot write {path}: {error.strerror}", origin="-o") from None
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


class _Problems:
    """Bad rows and domain warnings, reported on standard error as a batch goes."""

    def __init__(self, source: str):
        self.source, self.rows, self.bad, self.warnings = source, 0, 0, {}

    def add(self, report: Report | None, warnings) -> None:
        for warning in warnings:
            self.warnings.setdefault(warning, None)
        if report is None:
            return
        self.rows += report.count
        self.bad += len(report.bad_rows)
        for row, message in sorted(report.bad_rows.items()):
            print(f"jacli: row {report.first_row + row + 1}: {message}", file=sys.stderr)
        if sys.stderr.isatty() and self.rows > CHUNK:
            print(f"\rjacli: {self.rows:,} points", end="", file=sys.stderr, flush=True)

    def finish(self) -> int:
        """Print what is left to say; the exit status (1 if any row was bad)."""
        if sys.stderr.isatty() and self.rows > CHUNK:
            print(file=sys.stderr)
        for warning in self.warnings:
            print(f"jacli: warning: {warning.message(self.source)}", file=sys.stderr)
        if not self.bad:
            return 0
        print(f"jacli: {self.bad} of {self.rows} rows failed; {self.rows - self.bad} evaluated",
              file=sys.stderr)
        return 1


def _write_reports(job: _Job, fmt: str, output: str | None) -> int:
    """Evaluate chunk by chunk and write each chunk as it is done (bounded memory);
    .npy/.npz and tables need everything or the start only, and gather it."""
    problems = _Problems(job.source)
    suffix = Path(output).suffix.lower() if output else ""
    if suffix in (".npy", ".npz"):
        reports = []
        for report, warnings in job.reports():
            problems.add(report, warnings)
            reports.append(report)
        with _atomic_output(output, binary=True) as f:
            (save_npy if suffix == ".npy" else save_npz)(Report.concat(reports), f)
        return problems.finish()
    if fmt == "table" and output is None:
        from .render import render_report
        shown = None
        for report, warnings in job.reports():
            problems.add(report, warnings)
            shown = shown or report
        render_report(shown, problems.rows)
        return problems.finish()
    writer = TEXT_WRITERS["plain" if fmt == "table" else fmt]
    with (_atomic_output(output) if output else _stdout()) as out:
        for number, (report, warnings) in enumerate(job.reports()):
            writer(report, out, header=number == 0)
            out.flush()   # a pipe stage passes each chunk on at once (one write per chunk)
            problems.add(report, warnings)
    return problems.finish()


@contextmanager
def _stdout():
    yield sys.stdout
    sys.stdout.flush()


def _fail(error: JacliError) -> None:
    print("jacli: " + error.render(), file=sys.stderr)
    raise typer.Exit(2)


# --- the commands ------------------------------------------------------------------------

class Mode(str, Enum):
    auto = "auto"
    forward = "forward"
    reverse = "reverse"


class DiffFormat(str, Enum):
    jacli = "jacli"
    latex = "latex"
    json = "json"


class GraphFormat(str, Enum):
    dot = "dot"
    mermaid = "mermaid"


ModeOpt = Annotated[Mode, typer.Option(
    "--mode", help="reverse: a sweep per output; forward: a sweep per input; auto: forward "
    "when there are fewer inputs than outputs.")]
TangentOpt = Annotated[Optional[list[str]], typer.Option(
    "--tangent", metavar="NAME=VALUE,...", help="The tangent v of J.v, per variable "
    "(unnamed variables: 0).")]
CotangentOpt = Annotated[Optional[list[str]], typer.Option(
    "--cotangent", metavar="NAME=VALUE,...", help="The cotangent u of u^T.J, per output "
    "(unnamed outputs: 0).")]
ExplainOpt = Annotated[bool, typer.Option(
    "--explain", help="With --at: the backward pass step by step, from the last entry to the "
    "first (adjoint, local partials, contributions), ending with the gradient.")]
RtolOpt = Annotated[float, typer.Option(
    "--rtol", help="Relative tolerance: an entry fails when |AD - FD| > atol + rtol*|FD|.")]
AtolOpt = Annotated[float, typer.Option("--atol", help="Absolute tolerance.")]
OrderOpt = Annotated[int, typer.Option(
    "--order", min=1, max=2, help="1: first derivatives; 2: second derivatives (Hessian "
    "entries d2<out>/d<x>d<y> for x before or equal to y in --wrt order).")]
DiffFormatOpt = Annotated[DiffFormat, typer.Option(
    "--format", help="jacli: a program every jacli command reads; latex; json.")]
GraphFormatOpt = Annotated[GraphFormat, typer.Option("--format", help="Graphviz DOT or Mermaid.")]

_COMMON = [("program", ProgramArg, None), ("file", FileOpt, None), ("at", AtOpt, None)]
_BATCH = [("points", PointsOpt, None), ("points_format", PointsFormatOpt, None)]
_SELECT = [("wrt", WrtOpt, None), ("out", OutOpt, None)]
_WRITE = [("format", FormatOpt, Format.auto), ("output", OutputOpt, None),
          ("allow_unused", AllowUnusedOpt, False)]

#: Each command: its one-line summary and its options, in --help order.
COMMANDS = {
    "eval": ("Evaluate the outputs at each point.", _COMMON + _BATCH + _SELECT + _WRITE),
    "grad": ("Value and gradient of one scalar output at each point.",
             _COMMON + _BATCH + _SELECT + _WRITE),
    "jac": ("Values and the Jacobian (outputs x inputs) at each point.",
            _COMMON + _BATCH + _SELECT + [("mode", ModeOpt, Mode.auto)] + _WRITE),
    "hess": ("Value, gradient and exact Hessian of one scalar output at each point.",
             _COMMON + _BATCH + _SELECT + _WRITE),
    "jvp": ("Forward mode: the values and J.v for a tangent v.",
            _COMMON + [("tangent", TangentOpt, None)] + _BATCH + [("out", OutOpt, None)]
            + _WRITE),
    "vjp": ("Reverse mode: the values and u^T.J for a cotangent u.",
            _COMMON + [("cotangent", CotangentOpt, None)] + _BATCH + _SELECT + _WRITE),
    "tape": ("Show the recorded tape; with --at, its values and the backward sweep.",
             _COMMON + _SELECT + [("explain", ExplainOpt, False),
                                  ("format", FormatOpt, Format.auto),
                                  ("output", TextOutputOpt, None),
                                  ("allow_unused", AllowUnusedOpt, False)]),
    "check": ("The AD Jacobian beside central finite differences; exit 1 over tolerance.",
              _COMMON + _BATCH + _SELECT + [("rtol", RtolOpt, DEFAULT_RTOL),
                                            ("atol", AtolOpt, DEFAULT_ATOL)] + _WRITE),
    "diff": ("The derivatives as a jacli program (simplified, shared subexpressions as let).",
             [("program", ProgramArg, None), ("file", FileOpt, None)] + _SELECT
             + [("order", OrderOpt, 1), ("format", DiffFormatOpt, DiffFormat.jacli),
                ("output", TextOutputOpt, None)]),
    "graph": ("The computational graph, for Graphviz (dot) or Mermaid; with --at, values.",
              _COMMON + [("out", OutOpt, None), ("format", GraphFormatOpt, GraphFormat.dot),
                         ("output", TextOutputOpt, None), ("allow_unused", AllowUnusedOpt, False)]),
}


def _execute(command: str, options: dict) -> None:
    """Run one command; turn bad input into exit status 2 with one message."""
    try:
        job = _Job(command, options)
        if command == "tape":
            status = _run_tape(job, _resolve_format(options["format"], options["output"]),
                               options["output"])
        elif command == "check":
            status = _run_check(job, _resolve_format(options["format"], options["output"]),
                                options["output"])
        elif command == "diff":
            status = _run_diff(job, options["order"], options["format"].value,
                               options["output"])
        elif command == "graph":
            status = _run_graph(job, options["format"].value, options["output"])
        else:
            status = _write_reports(job, _resolve_format(options["format"], options["output"]),
                                    options["output"])
    except JacliError as error:
        _fail(error)
    except BrokenPipeError:
        # The reader went away (`| head -1`): stop quietly, as other Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 141
    except OSError as error:   # standard output closed, disk full, ...
        print(f"jacli: cannot write standard output: {error.strerror}", file=sys.stderr)
        status = 1
    raise typer.Exit(status)


def _make_command(app: typer.Typer, command: str) -> None:
    summary, options = COMMANDS[command]

    def command_function(**given) -> None:
        _execute(command, given)

    # Typer reads the options from the signature: build it from the table above.
    command_function.__signature__ = inspect.Signature([
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                          annotation=annotation) for name, annotation, default in options])
    command_function.__doc__ = summary
    app.command(command, help=summary, short_help=summary,
                epilog=_epilog(command))(command_function)


def _run_tape(job: _Job, fmt: str, output: str | None) -> int:
    from .tape_view import explain_steps, tape_rows, write_explain, write_tape

    if output and Path(output).suffix.lower() in (".npy", ".npz"):
        raise JacliError("the tape is text: write it to .txt, .csv or .jsonl", origin="-o")
    # With no values at all the tape is shown as recorded; with some, all must be given.
    trace = None
    if job.at or not job.program.needed_variables(job.outputs):
        trace = job.program.trace(job.at, job.inputs, job.outputs)
    rows = tape_rows(job.program, job.outputs, trace)
    text_format = "plain" if fmt == "table" else fmt
    if job.options["explain"]:
        if trace is None:
            raise JacliError("--explain needs a point: give the variables with --at",
                             origin="--explain")
        if fmt == "csv":
            raise JacliError("--explain writes table, plain or json", origin="--format")
        steps = explain_steps(rows, job.outputs, trace)
        if fmt == "table" and output is None:
            from .render import render_explain
            render_explain(steps)
        elif output is None:
            write_explain(steps, text_format, sys.stdout)
        else:
            with _atomic_output(output) as f:
                write_explain(steps, text_format, f)
    elif fmt == "table" and output is None:
        from .render import render_tape
        render_tape(job.program, job.outputs, trace, rows)
    elif output is None:
        write_tape(rows, text_format, sys.stdout)
    else:
        with _atomic_output(output) as f:
            write_tape(rows, text_format, f)
    problems = _Problems(job.source)
    problems.add(None, trace.warnings if trace else [])
    return problems.finish()


def _run_check(job: _Job, fmt: str, output: str | None) -> int:
    from .check import check_jacobian
    from .check_view import check_renderable, verdict_line, write_check

    if output and Path(output).suffix.lower() in (".npy", ".npz"):
        raise JacliError("check writes text: .txt, .csv or .jsonl", origin="-o")
    problems = _Problems(job.source)
    counts = [0, 0, 0]   # points checked, points failing, bad rows
    noted: list[list[str]] = []   # the first three failing points, for standard error

    def check(points: Points | None):
        values, mask, count = job.bindings(points)
        variables, at = job.at_table(values, mask, count)
        result = check_jacobian(job.program, values, job.inputs, job.outputs,
                                job.options["rtol"], job.options["atol"])
        failing = result.failing_points()
        for point in failing[:3 - len(noted)]:
            noted.append([f"jacli: point {counts[0] + point + 1}: d{failure.output}/"
                          f"d{failure.input}: {failure.reason}"
                          for failure in result.failures(point)[:3]])
        problems.add(None, result.warnings)
        bad = points.bad_rows if points else {}
        counts[:] = [counts[0] + result.count, counts[1] + len(failing), counts[2] + len(bad)]
        return result, variables, at, bad

    if fmt == "table" and output is None:   # a few points shown of all: gathered
        from .render import _console
        chunks = list(job.chunks())
        result, variables, at, bad = check(None if chunks == [None] else Points.concat(chunks))
        _console().print(check_renderable(result, at, variables, bad))
    else:   # chunk by chunk, as the other commands write: memory bounded by the chunk
        with (_atomic_output(output) if output else _stdout()) as out:
            for number, points in enumerate(job.chunks()):
                result, variables, at, bad = check(points)
                write_check(result, "plain" if fmt == "table" else fmt, out, variables, at,
                            bad, first_row=points.first_row if points else 0,
                            header=number == 0)
                out.flush()
    status = problems.finish()
    if counts[1]:
        for lines in noted:
            print("\n".join(lines), file=sys.stderr)
        print(f"jacli: {verdict_line(*counts, job.options['rtol'], job.options['atol'])}",
              file=sys.stderr)
        return 1
    return 1 if counts[2] else status


def _run_diff(job: _Job, order: int, fmt: str, output: str | None) -> int:
    from .printer import derivatives, to_jacli, to_json, to_latex

    if output and Path(output).suffix.lower() in (".npy", ".npz"):
        raise JacliError("the derivative program is text: write it to .jac or .txt",
                         origin="-o")
    result = derivatives(job.program, job.outputs, job.inputs, order)
    text = {"jacli": to_jacli, "latex": to_latex, "json": to_json}[fmt](result)
    if output is None:
        sys.stdout.write(text)
    else:
        with _atomic_output(output) as f:
            f.write(text)
    return 0


def _run_graph(job: _Job, fmt: str, output: str | None) -> int:
    from .graph import to_dot, to_mermaid

    if output and Path(output).suffix.lower() in (".npy", ".npz"):
        raise JacliError("the graph is text: write it to .dot, .mmd or .txt", origin="-o")
    trace = job.program.trace(job.at, None, job.outputs) if job.at else None
    text = (to_dot if fmt == "dot" else to_mermaid)(job.program, job.outputs,
                                                    trace.values if trace else None)
    if output is None:
        sys.stdout.write(text)
    else:
        with _atomic_output(output) as f:
            f.write(text)
    problems = _Problems(job.source)
    problems.add(None, trace.warnings if trace else [])
    return problems.finish()


def _make_app(commands) -> typer.Typer:
    app = typer.Typer(
        add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
        rich_markup_mode=None,
        help="Gradients and Jacobians of math written as text.\n\n"
             "Run `jacli COMMAND --help` for a command's options and examples.")
    app.callback()(_main)
    for command in commands:
        _make_command(app, command)
    return app


app = _make_app(COMMANDS)


def _app_for(argv: list[str]) -> typer.Typer:
    """Typer turns every command of an app into click objects on each run: for
    `jacli COMMAND ...` an app of that one command starts sooner, and its usage lines,
    --help and errors read the same."""
    if len(argv) > 1 and argv[1] in COMMANDS:
        return _make_app([argv[1]])
    return app


def main() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # What the imports made lives until the process ends: set it aside from the cycle
    # collector, whose passes (the last one at exit above all) would scan it again and
    # again: about 10 ms of a one-point run.
    gc.freeze()
    if sys.stdout is None:   # started with standard output closed (`jacli ... >&-`)
        sys.stdout = open(os.devnull, "w")
        if not any(a in ("-o", "--output") or a.startswith("--output=") for a in sys.argv):
            print("jacli: standard output is closed: nothing to write the results to "
                  "(use -o PATH)", file=sys.stderr)
            sys.exit(1)
    try:
        _app_for(sys.argv)()
    except KeyboardInterrupt:
        print("jacli: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as error:  # a bug in jacli, not bad input: say so briefly
        if os.environ.get("JACLI_DEBUG"):
            raise
        print(f"jacli: internal error: {type(error).__name__}: {error}\n"
              "  this is a bug in jacli; JACLI_DEBUG=1 shows the traceback", file=sys.stderr)
        sys.exit(70)

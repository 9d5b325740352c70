"""The command line: parse options, call the library, hand results to a writer.

Exit status: 0 success; 1 evaluation ran but some rows of --points failed, or the results
could not be written (disk full); 2 the command line or the program is wrong (one message,
no traceback); 141 the reader went away; 128 + N ended by signal N (jacli/output.py).
"""

from __future__ import annotations

import errno
import gc
import inspect
import os
import re
import signal
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

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
    from .batch import Batch, nothing_to_differentiate
    from .errors import JacliError
    from .prims import CONSTANTS, FUNCTIONS
    from .formats import TEXT_WRITERS, ParquetWriter, Report, save_npy, save_npz
    from .output import (StdoutClosed, WriteError, clean_up_on_signals, descriptor_named,
                         guard_standard_streams, target)
    from .points import parse_at
finally:
    if _collecting:
        gc.enable()


class Format(str, Enum):
    auto = "auto"
    table = "table"
    plain = "plain"
    json = "json"
    csv = "csv"


class Reduce(str, Enum):
    sum = "sum"
    mean = "mean"


class PointsFormat(str, Enum):
    csv = "csv"
    tsv = "tsv"
    ssv = "ssv"
    jsonl = "jsonl"
    npy = "npy"
    npz = "npz"
    parquet = "parquet"


ProgramArg = Annotated[Optional[str], typer.Argument(
    metavar="PROGRAM", help="The program text, e.g. 'x^2*y + sin(z)'. Or use -f.",
    show_default=False)]
FileOpt = Annotated[Optional[str], typer.Option(
    "--file", "-f", metavar="PATH", help="Read the program from PATH ('-' for standard input).")]
AtOpt = Annotated[Optional[list[str]], typer.Option(
    "--at", metavar="NAME=VALUE,...", help="Values of variables, e.g. x=1,y=pi/4: numbers "
    "or constant expressions; arrays as nested lists, e.g. 'W=[[1,2],[3,4]]'; @FILE reads "
    "a JSON object of them (repeatable). With --points, shared by every point.")]
AtOnceOpt = Annotated[Optional[list[str]], typer.Option(   # tape and graph: no --points
    "--at", metavar="NAME=VALUE,...", help="Values of variables, e.g. x=1,y=pi/4: numbers "
    "or constant expressions; arrays as nested lists, e.g. 'W=[[1,2],[3,4]]'; @FILE reads "
    "a JSON object of them (repeatable).")]
ShapeOpt = Annotated[Optional[list[str]], typer.Option(
    "--shape", metavar="NAME=DIMS,...", help="Shapes of variables that no value gives, "
    "e.g. x=3,W=2x3 (others are scalars; repeatable): how the columns of .npy points "
    "make arrays.")]
ShapeOnceOpt = Annotated[Optional[list[str]], typer.Option(   # tape, graph, diff: no --points
    "--shape", metavar="NAME=DIMS,...", help="Shapes of variables that no value gives, "
    "e.g. x=3,W=2x3 (others are scalars; repeatable).")]
PointsOpt = Annotated[Optional[str], typer.Option(
    "--points", metavar="PATH", help="Many points: CSV or TSV with a header row naming the "
    "variables, JSON Lines, .npy (columns named by --columns; default: the inputs, in "
    "order), .npz (an array per variable) or Parquet (a file, a directory or a glob of them). "
    "'-' reads standard input (CSV, or JSON Lines if it starts with '{').")]
PointsFormatOpt = Annotated[Optional[PointsFormat], typer.Option(
    "--points-format", case_sensitive=False, help="Format of --points when its ending does "
    "not tell (ssv: fields separated by spaces, as jacli's plain output).")]
ColumnsOpt = Annotated[Optional[str], typer.Option(
    "--columns", metavar="X,Y", help="The names of the columns of --points when it has no "
    "header row (CSV, TSV, spaces), or of an .npy's columns.")]
WrtOpt = Annotated[Optional[str], typer.Option(
    "--wrt", metavar="X,Y", help="The inputs to differentiate with respect to, in order "
    "(default: the free variables, in order of first appearance).")]
EvalWrtOpt = Annotated[Optional[str], typer.Option(   # eval takes no derivatives
    "--wrt", metavar="X,Y", help="The variables of the columns of .npy points, in order "
    "(default: in order of first appearance; or --columns).")]
OutOpt = Annotated[Optional[list[str]], typer.Option(
    "--out", metavar="NAME", help="Which outputs, in order (repeatable; default: all).")]
FormatOpt = Annotated[Format, typer.Option(
    "--format", case_sensitive=False, help="auto: table on a terminal, plain otherwise.")]
OutputOpt = Annotated[Optional[str], typer.Option(
    "--output", "-o", metavar="PATH", help="Write results to PATH (.csv, .jsonl, .txt, "
    ".npy, .npz, .parquet) instead of standard output.")]
CheckOutputOpt = Annotated[Optional[str], typer.Option(
    "--output", "-o", metavar="PATH", help="Write results to PATH (.csv, .jsonl, .txt) "
    "instead of standard output.")]
TextOutputOpt = Annotated[Optional[str], typer.Option(
    "--output", "-o", metavar="PATH", help="Write to PATH instead of standard output.")]
ReduceOpt = Annotated[Optional[Reduce], typer.Option(
    "--reduce", case_sensitive=False, help="With --points: one result, the sum or mean over "
    "all rows of each row's (bad rows are left out and named; JSON gives the rows used).")]
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
            "jacli jac -f samples/rosenbrock.jac --wrt x,y --at a=1,b=100 "
            "--points samples/points.csv -o J.npy",
            "jacli jac -f samples/robot_arm.jac --wrt q1,q2 --at l1=1,l2=0.8,q1=pi/4,q2=pi/6",
            "jacli jac 'u = x^2; v = x^3; w = sin(x)' --at x=2 --mode forward"],
    "hess": ["jacli hess 'x^2*y + sin(z)' --at x=1,y=2,z=3",
             "jacli hess -f samples/rosenbrock.jac --wrt x,y --at x=1,y=1,a=1,b=100 --format json"],
    "jvp": ["jacli jvp 'r = sqrt(x^2+y^2); theta = atan2(y, x)' --at x=3,y=4 --tangent x=1,y=0"],
    "hvp": ["jacli hvp 'x^2*y + sin(z)' --at x=1,y=2,z=3 --tangent x=1",
            "jacli hvp 'sum(100*(x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2)' "
            "--at 'x=[0.5,1,1.5,2]' --tangent 'x=[1,0,0,0]'"],
    "vjp": ["jacli vjp 'r = sqrt(x^2+y^2); theta = atan2(y, x)' --at x=3,y=4 "
            "--cotangent r=1,theta=0"],
    "check": ["jacli check 'x^2*y + sin(z)' --at x=1,y=2,z=3",
              "jacli check 'relu(x)' --at x=0     # exits 1: a kink",
              "jacli check --fast 'sum(tanh(W @ x))' --at 'W=[[1,2],[3,4]],x=[0.5,-1]'",
              "jacli check -f samples/rosenbrock.jac --wrt x,y --at a=1,b=100 "
              "--points samples/points.csv --format json"],
    "diff": ["jacli diff 'x^2*sin(x)'",
             "jacli diff -f samples/polar.jac --format latex",
             "jacli diff -f samples/rosenbrock.jac --wrt x,y | jacli eval -f - --at x=1,y=2,a=1,b=100",
             "jacli diff 'x^2*y + sin(z)' --order 2"],
    "graph": ["jacli graph 'x^2*y + sin(z)' | dot -Tsvg > graph.svg",
              "jacli graph -f samples/softmax.jac --format mermaid",
              "jacli graph 'x*y + sin(x)' --at x=1,y=2"],
    "chain": ["jacli chain 'let a = x*y; f = sin(a) + x' --at x=1,y=2",
              "jacli chain 'let h = tanh(W @ x); f = sum(h^2)' --wrt x "
              "--at 'W=[[1,2],[3,4]],x=[0.1,0.2]' --format json"],
    "tape": ["jacli tape 'x^2*y + sin(z)' --at x=1,y=2,z=3",
             "jacli tape 'sin(x)*x' --at x=2 --format json | jq -c ."],
    "sparsity": ["jacli sparsity 'x[1:] - x[:-1]^2' --shape x=6",
                 "jacli sparsity 'sum((x[1:] - x[:-1]^2)^2)' --shape x=1000 --hessian "
                 "--format json",
                 "jacli jac 'exp(x)*sin(x)' --at x=[1,2,3] --sparse --format json"],
}


def _language_summary() -> str:
    """The functions, constants and operators of the language, for every --help."""
    from .prims import VARIADIC

    calls = {1: "{}", 2: {"atan2": "atan2(y, x)", "hypot": "hypot(x, y)",
                          "pow": "pow(x, y)"}, VARIADIC: "{}(a, b, ...)"}
    names = []
    for arity in (1, 2, VARIADIC):
        for name, n in FUNCTIONS.items():
            if n == arity:
                form = calls[arity]
                names.append(form.get(name, f"{name}(...)") if isinstance(form, dict)
                             else form.format(name))
    lines, line = [], "Functions:"
    for name in names:   # filled by hand: a call such as atan2(y, x) stays on one line
        if len(line) + 1 + len(name) > 76:
            lines.append(line)
            line = " "
        line += " " + name
    lines.append(line)
    lines += ["Constants: " + " ".join(CONSTANTS) + ". Operators, loosest first: + -, * /, "
              "unary - +,", "  ^ (or **, right to left). Statements: expr, name = expr, "
              "let name = expr,", "  separated by new lines or ';'; # starts a comment."]
    return "\n".join(f"  {line}" for line in lines)


def _epilog(command: str) -> str:
    # "\b" keeps click from re-wrapping the example lines.
    return ("Examples:\n\n\b\n" + "\n".join(f"  $ {line}" for line in EXAMPLES[command])
            + "\n\nThe language:\n\n\b\n" + _language_summary())


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


class _Job(Batch):
    """What a command was asked: a Batch, from the command line's options."""

    def __init__(self, command: str, options: dict):
        self.options = options
        if options["file"] == "-" and options.get("points") == "-":
            raise JacliError("-f - and --points - cannot both read standard input",
                             origin="command line")
        program = Program(_read_program(options["program"], options["file"]))
        at = parse_at(options.get("at") or [])
        shapes = {}
        if options.get("shape"):
            from .components import parse_shapes
            shapes = parse_shapes(options["shape"])
        seeds = {name: parse_at(options[name], f"--{name}")
                 for name in ("tangent", "cotangent") if options.get(name)}
        fmt, mode = options.get("points_format"), options.get("mode")
        super().__init__(program, command, options.get("points"), at=at,
                         wrt=_split(options.get("wrt")), outputs=_names(options["out"]),
                         shapes=shapes, tangent=seeds.get("tangent"),
                         cotangent=seeds.get("cotangent"),
                         mode=mode.value if mode else "auto",
                         points_format=fmt.value if fmt else None,
                         columns=_split(options.get("columns")),
                         allow_unused=options.get("allow_unused", False),
                         reduce=options["reduce"].value if options.get("reduce") else None)
        if not self.inputs and options.get("explain"):
            nothing_to_differentiate(program, self.outputs)


# --- writing -----------------------------------------------------------------------------

_FORMAT_BY_SUFFIX = {".csv": "csv", ".jsonl": "json", ".json": "json", ".txt": "plain"}
#: Endings of the files written whole by a binary writer, not by a text format.
_BINARY_SUFFIXES = (".npy", ".npz", ".parquet")


def _resolve_format(fmt: Format, output: str | None) -> str:
    """The format to write: --format, else told by -o's ending (an ending that tells
    nothing is refused: `-o out.xlsx` would be plain text), else by the terminal."""
    if output is not None and descriptor_named(output) == 1:
        output = None   # standard output, by a name (/dev/stdout)
    suffix = Path(output).suffix.lower() if output else ""
    if fmt is not Format.auto:
        if suffix in _BINARY_SUFFIXES:
            kind = "a Parquet" if suffix == ".parquet" else "a NumPy"
            raise JacliError(f"{output} is {kind} file: --format {fmt.value} cannot be "
                             "written to it", origin="-o",
                             hint="leave out --format, or give -o a text ending (.csv, "
                                  ".jsonl, .txt)")
        return fmt.value
    if output is not None:
        if suffix and suffix not in _FORMAT_BY_SUFFIX and suffix not in _BINARY_SUFFIXES:
            raise JacliError(f"cannot tell the format of {output} from its ending",
                             origin="-o", hint="use .csv, .jsonl, .txt, .npy, .npz or "
                                               ".parquet, or give --format")
        return _FORMAT_BY_SUFFIX.get(suffix, "plain")
    return "table" if sys.stdout.isatty() else "plain"


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
        with target(output, binary=True) as f:
            (save_npy if suffix == ".npy" else save_npz)(Report.concat(reports), f)
        return problems.finish()
    if suffix == ".parquet":   # streamed, a row group at a time
        parquet = ParquetWriter(output)
        with target(output, binary=True) as f, parquet.into(f):
            for report, warnings in job.reports():
                parquet.write(report)
                problems.add(report, warnings)
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
    with target(output) as out:
        for number, (report, warnings) in enumerate(job.reports()):
            writer(report, out, header=number == 0)
            out.flush()   # a pipe stage passes each chunk on at once (one write per chunk)
            problems.add(report, warnings)
    return problems.finish()


def _write_reduced(job: _Job, fmt: str, output: str | None) -> int:
    """--reduce: the rows read chunk by chunk (bad ones named as they come), then the one
    result written as one point's."""
    problems = _Problems(job.source)
    for rows, warnings in job.reduction():
        problems.add(rows, warnings)
    report = job.reduced
    suffix = Path(output).suffix.lower() if output else ""
    if suffix in (".npy", ".npz"):
        with target(output, binary=True) as f:
            (save_npy if suffix == ".npy" else save_npz)(report, f)
    elif fmt == "table" and output is None:
        from .render import render_report
        render_report(report)
    else:
        with target(output) as out:
            TEXT_WRITERS["plain" if fmt == "table" else fmt](report, out, header=True)
    return problems.finish()


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
    "--mode", case_sensitive=False, help="reverse: a sweep per output; forward: a sweep per input; auto: forward "
    "when there are fewer inputs than outputs.")]
TangentOpt = Annotated[Optional[list[str]], typer.Option(
    "--tangent", metavar="NAME=VALUE,...", help="The tangent v of J.v, per variable "
    "(unnamed variables: 0).")]
HvpTangentOpt = Annotated[Optional[list[str]], typer.Option(
    "--tangent", metavar="NAME=VALUE,...", help="The vector v of H.v, per input "
    "(unnamed inputs: 0).")]
CotangentOpt = Annotated[Optional[list[str]], typer.Option(
    "--cotangent", metavar="NAME=VALUE,...", help="The cotangent u of u^T.J, per output "
    "(unnamed outputs: 0).")]
ExplainOpt = Annotated[bool, typer.Option(
    "--explain", help="With --at: the backward pass step by step, from the last entry to the "
    "first (adjoint, local partials, contributions), ending with the gradient.")]
RtolOpt = Annotated[float, typer.Option(
    "--rtol", help="Relative tolerance: an entry fails when |AD - FD| > atol + rtol*|FD|.")]
AtolOpt = Annotated[float, typer.Option("--atol", help="Absolute tolerance.")]
FastOpt = Annotated[bool, typer.Option(
    "--fast", help="Check u^T.J.v along one random direction (one JVP and four "
    "evaluations per point) instead of every entry: for large programs.")]
SeedOpt = Annotated[int, typer.Option(
    "--seed", help="With --fast: the seed of the random directions u and v.")]
OrderOpt = Annotated[int, typer.Option(
    "--order", min=1, max=2, help="1: first derivatives; 2: second derivatives (Hessian "
    "entries d2<out>/d<x>d<y> for x before or equal to y in --wrt order).")]
DiffFormatOpt = Annotated[DiffFormat, typer.Option(
    "--format", case_sensitive=False, help="jacli: a program every jacli command reads; latex; json.")]
GraphFormatOpt = Annotated[GraphFormat, typer.Option(
    "--format", case_sensitive=False, help="Graphviz DOT or Mermaid.")]

SparseOpt = Annotated[bool, typer.Option(
    "--sparse", help="Only the structural nonzeros, in COO order: json rows, cols, values; "
    "csv a column per nonzero; .npz as scipy.sparse.load_npz reads (README, The "
    "Jacobian's structure).")]
HessianOpt = Annotated[bool, typer.Option(
    "--hessian", help="The pattern of the Hessian of one scalar output.")]

_COMMON = [("program", ProgramArg, None), ("file", FileOpt, None), ("at", AtOpt, None),
           ("shape", ShapeOpt, None)]
_COMMON_ONCE = [("program", ProgramArg, None), ("file", FileOpt, None), ("at", AtOnceOpt, None),
                ("shape", ShapeOnceOpt, None)]
_BATCH = [("points", PointsOpt, None), ("points_format", PointsFormatOpt, None),
          ("columns", ColumnsOpt, None)]
_SELECT = [("wrt", WrtOpt, None), ("out", OutOpt, None)]
_REDUCE = [("reduce", ReduceOpt, None)]
_WRITE = [("format", FormatOpt, Format.auto), ("output", OutputOpt, None),
          ("allow_unused", AllowUnusedOpt, False)]

#: Each command: its one-line summary and its options, in --help order.
COMMANDS = {
    "eval": ("Evaluate the outputs at each point.",
             _COMMON + _BATCH + _REDUCE + [("wrt", EvalWrtOpt, None), ("out", OutOpt, None)]
             + _WRITE),
    "grad": ("Value and gradient of one scalar output at each point.",
             _COMMON + _BATCH + _REDUCE + _SELECT + _WRITE),
    "jac": ("Values and the Jacobian (outputs x inputs) at each point.",
            _COMMON + _BATCH + _REDUCE + _SELECT + [("mode", ModeOpt, Mode.auto),
                                                    ("sparse", SparseOpt, False)] + _WRITE),
    "hess": ("Value, gradient and exact Hessian of one scalar output at each point.",
             _COMMON + _BATCH + _REDUCE + _SELECT + [("sparse", SparseOpt, False)] + _WRITE),
    "jvp": ("Forward mode: the values and J.v for a tangent v.",
            _COMMON + [("tangent", TangentOpt, None)] + _BATCH + _REDUCE
            + [("out", OutOpt, None)] + _WRITE),
    "vjp": ("Reverse mode: the values and u^T.J for a cotangent u.",
            _COMMON + [("cotangent", CotangentOpt, None)] + _BATCH + _REDUCE + _SELECT
            + _WRITE),
    "hvp": ("Value, gradient and the Hessian-vector product H.v of one scalar output.",
            _COMMON + [("tangent", HvpTangentOpt, None)] + _BATCH + _SELECT + _WRITE),
    "tape": ("Show the recorded tape; with --at, its values and the backward sweep.",
             _COMMON_ONCE + _SELECT + [("explain", ExplainOpt, False),
                                  ("format", FormatOpt, Format.auto),
                                  ("output", TextOutputOpt, None),
                                  ("allow_unused", AllowUnusedOpt, False)]),
    "check": ("The AD Jacobian beside central finite differences; exit 1 over tolerance.",
              _COMMON + _BATCH + _SELECT + [("rtol", RtolOpt, DEFAULT_RTOL),
                                            ("atol", AtolOpt, DEFAULT_ATOL),
                                            ("fast", FastOpt, False), ("seed", SeedOpt, 0),
                                            ("format", FormatOpt, Format.auto),
                                            ("output", CheckOutputOpt, None),
                                            ("allow_unused", AllowUnusedOpt, False)]),
    "diff": ("The derivatives as a jacli program (simplified, shared subexpressions as let).",
             [("program", ProgramArg, None), ("file", FileOpt, None),
              ("shape", ShapeOnceOpt, None)] + _SELECT
             + [("order", OrderOpt, 1), ("format", DiffFormatOpt, DiffFormat.jacli),
                ("output", TextOutputOpt, None)]),
    "chain": ("Each statement's local Jacobian and their product, the program's Jacobian.",
              _COMMON_ONCE + _SELECT + [("format", FormatOpt, Format.auto),
                                        ("output", TextOutputOpt, None),
                                        ("allow_unused", AllowUnusedOpt, False)]),
    "graph": ("The computational graph, for Graphviz (dot) or Mermaid; with --at, values.",
              _COMMON_ONCE + [("out", OutOpt, None),
                              ("format", GraphFormatOpt, GraphFormat.dot),
                         ("output", TextOutputOpt, None), ("allow_unused", AllowUnusedOpt, False)]),
    "sparsity": ("The Jacobian's (or Hessian's) structural nonzeros and its colourings' "
                 "sweeps; shapes from --at, --points or --shape, no values needed.",
                 _COMMON + _BATCH + _SELECT + [("hessian", HessianOpt, False),
                                               ("format", FormatOpt, Format.auto),
                                               ("output", TextOutputOpt, None),
                                               ("allow_unused", AllowUnusedOpt, False)]),
}


def _execute(command: str, options: dict) -> None:
    """Run one command; turn bad input into exit status 2 with one message."""
    if options.get("output") == "-":   # `-o -` is standard output, as `-f -` is standard input
        options = {**options, "output": None}
    try:
        if options.get("output") == "":   # said before the points are opened and checked
            raise JacliError("the output path is empty", origin="-o")
        job = _Job(command, options)
        output = options["output"]
        if command == "diff":
            status = _run_diff(job, options["order"], options["format"].value, output)
        elif command == "graph":
            status = _run_graph(job, options["format"].value, output)
        else:   # the commands of --format auto|table|plain|json|csv
            write = {"tape": _run_tape, "check": _run_check, "chain": _run_chain,
                     "sparsity": _run_sparsity}.get(command)
            if write is None:
                write = (_run_sparse if options.get("sparse") else
                         _write_reduced if job.reduce else _write_reports)
            status = write(job, _resolve_format(options["format"], output), output)
        sys.stdout.flush()
    except JacliError as error:
        _fail(_file_hint(error, options))
    except WriteError as error:
        status = _write_failed(error)
    except OSError as error:   # reading the points failed (EIO, ...): not a write
        points = options.get("points")
        if not points:
            raise
        name = "standard input" if points == "-" else points
        _fail(JacliError(f"cannot read points file {name}: {error.strerror or error}",
                         origin="--points"))
    raise typer.Exit(status)


def _file_hint(error: JacliError, options: dict) -> JacliError:
    """A program argument that fails and names an existing file was meant for -f."""
    program = options.get("program")
    if error.origin == "program" and program and options.get("file") is None \
            and len(program) < 4096 and os.path.isfile(program):
        error.hint = f"did you mean -f {_shell([program])}?"
    return error


def _write_failed(error: OSError) -> int:
    """The exit status of a failed write, said on standard error."""
    if error.filename == "standard output":
        # Nothing more can reach it: what is still buffered goes to /dev/null, quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    if error.errno == errno.EPIPE:
        # The reader went away (`| head -1`, a FIFO's reader): stop quietly, as other
        # Unix tools do.
        return 141
    if isinstance(error, StdoutClosed):
        print("jacli: standard output is closed: nothing to write the results to "
              "(use -o PATH)", file=sys.stderr)
    else:   # disk full, ...: the run failed (1), the command line was right
        print(f"jacli: cannot write {error.filename}: {error.strerror}", file=sys.stderr)
    return 1


def _make_command(app: typer.Typer, command: str) -> None:
    summary, options = COMMANDS[command]

    def command_function(**given) -> None:
        _execute(command, given)

    # Typer reads the options from the signature: build it from the table above.
    command_function.__signature__ = inspect.Signature([
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                          annotation=annotation) for name, annotation, default in options])
    command_function.__doc__ = summary
    app.command(command, help=summary, short_help=summary, cls=_Command,
                epilog=_epilog(command))(command_function)


# --- the command line looked over before click parses it ---------------------------------

class _Command(typer.core.TyperCommand):
    """A command whose arguments are looked over before click parses them (`_look_over`)."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        takes_value, flags = set(), {"--help"}
        for param in self.params:
            if param.param_type_name == "option":
                (flags if param.is_flag else takes_value).update(param.opts
                                                                 + param.secondary_opts)
        return super().parse_args(ctx, _look_over(self.name, list(args), takes_value, flags))


#: Options whose value is a NAME=VALUE list: a bare `y=2` after one is likely its tail.
_LIST_OPTIONS = ("--at", "--tangent", "--cotangent")
_ASSIGNMENT = re.compile(r"\s*[A-Za-z_][A-Za-z0-9_]*=[^\s=]*,?\Z")   # y=2, not y = 2*x


def _look_over(command: str, args: list[str], takes_value: set[str],
               flags: set[str]) -> list[str]:
    """The arguments for click, with a program that starts with '-' but cannot be an
    option (`-x^2`, `-2*x`, `-(a+b)`: it holds an operator, a parenthesis, a digit or a
    space) moved behind '--'. The usual slips end the run with a hint: `-x` (a program
    or a mistyped option?), options after '--', `--at x=1 y=2`."""
    options_part = args[:args.index("--")] if "--" in args else args
    if "--help" in options_part:
        return args
    kept, moved, positional = [], [], []   # positional: (argument, (list option, value))
    after_list, i = None, 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest = args[i + 1:]
            options = [a for a in rest if a.split("=", 1)[0] in takes_value | flags]
            if options:
                _hint_fail(f"options after '--' are not read as options: {options[0]}",
                           "put options before '--': " + _shell(
                               ["jacli", command] + kept + _options_first(rest, takes_value)))
            positional += [(a, None) for a in rest]
            kept += args[i:]
            break
        name = arg.split("=", 1)[0] if arg.startswith("--") else arg
        if name in takes_value:
            step = 1 if name != arg else 2   # --at=x=1, or --at x=1
            kept += args[i:i + step]
            after_list = None
            if name in _LIST_OPTIONS and i + step <= len(args):
                after_list = (name, arg.split("=", 1)[1] if step == 1 else args[i + 1])
            i += step
            continue
        if arg.startswith("-") and not arg.startswith("--") and len(arg) > 1 \
                and arg not in flags and arg[:2] not in takes_value:
            if re.fullmatch(r"-[A-Za-z_][A-Za-z0-9_]*", arg):
                _hint_fail(f"no such option: {arg}", "a program that starts with '-' goes "
                           "after '--': " + _shell(["jacli", command] + kept + args[i + 1:]
                                                   + ["--", arg]))
            moved.append(arg)       # -x^2: a program, not an option
            positional.append((arg, None))
            after_list = None
            i += 1
            continue
        if not arg.startswith("-") or arg == "-":
            positional.append((arg, after_list))
            if after_list is None or not _ASSIGNMENT.match(arg):
                after_list = None
        kept.append(arg)
        i += 1
    if len(positional) > 1:   # more than one program: is one the tail of an --at list?
        for arg, after in positional:
            if after is not None and _ASSIGNMENT.match(arg):
                option, value = after
                joined = value.rstrip().rstrip(",") + "," + arg.strip()
                _hint_fail(f"'{arg}' is not part of the {option} before it: the values of "
                           "one option are one argument", f"write {option} {_shell([joined])}")
    if moved and "--" not in kept:
        kept += ["--"] + moved
    else:
        kept += moved
    return kept


def _options_first(args: list[str], takes_value: set[str]) -> list[str]:
    """`args` with the options (and their values) before '--' and the rest after it."""
    options, others, i = [], [], 0
    while i < len(args):
        arg = args[i]
        if arg in takes_value:
            options += args[i:i + 2]
            i += 2
            continue
        (options if arg.startswith("--") else others).append(arg)
        i += 1
    return options + ["--"] + others


def _shell(words: list[str]) -> str:
    import shlex

    return " ".join(shlex.quote(w) for w in words)


def _hint_fail(message: str, hint: str) -> None:
    _fail(JacliError(message, origin="command line", hint=hint))


def _run_tape(job: _Job, fmt: str, output: str | None) -> int:
    from .tape_view import explain_steps, tape_rows, write_explain, write_tape

    if output and Path(output).suffix.lower() in _BINARY_SUFFIXES:
        raise JacliError("the tape is text: write it to .txt, .csv or .jsonl", origin="-o")
    # With no values at all the tape is shown as recorded; with some, all must be given.
    # In a run of arrays every entry shows its shape: from the values, or from --shape.
    trace, shapes = None, None
    if job.at or not job.program.needed_variables(job.outputs):
        trace = job.program.trace(job.at, job.inputs, job.outputs, batch=False)
    elif job.given_arrays():
        from .shapes import infer_shapes
        shapes = infer_shapes(job.program.tape, job.shapes)
    rows = tape_rows(job.program, job.outputs, trace, shapes)
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
        else:
            with target(output) as f:
                write_explain(steps, text_format, f)
    elif fmt == "table" and output is None:
        from .render import render_tape
        render_tape(job.program, job.outputs, trace, rows)
    else:
        with target(output) as f:
            write_tape(rows, text_format, f)
    problems = _Problems(job.source)
    problems.add(None, trace.warnings if trace else [])
    return problems.finish()


def _refuse_arrays(job: _Job, command: str) -> None:
    """The views not yet array-aware (`graph` with values, `diff`): a clear error, exit 2,
    for a run of arrays (an array value or --shape, or a program of array operations)."""
    if not job.given_arrays():
        return
    if any(np.ndim(v) for v in job.at.values()):
        raise JacliError(f"`{command}` does not take array values yet", origin="--at")
    if any(job.shapes.values()):
        raise JacliError(f"`{command}` does not take array shapes yet", origin="--shape")
    raise JacliError(f"`{command}` does not take programs of arrays yet", origin="program")


def _run_check(job: _Job, fmt: str, output: str | None) -> int:
    from .check_view import check_renderable, verdict_line, write_check

    if output and Path(output).suffix.lower() in _BINARY_SUFFIXES:
        raise JacliError("check writes text: .txt, .csv or .jsonl", origin="-o")
    problems = _Problems(job.source)
    counts = [0, 0, 0]   # points checked, points failing, bad rows
    noted: list[list[str]] = []   # the first three failing points, for standard error
    rtol, atol = job.options["rtol"], job.options["atol"]
    fast = job.options["seed"] if job.options["fast"] else None

    def note(result, bad) -> None:
        failing = result.failing_points()
        for point in failing[:3 - len(noted)]:
            noted.append([f"jacli: point {counts[0] + point + 1}: d{failure.output}/"
                          f"d{failure.input}: {failure.reason}"
                          for failure in result.failures(point)[:3]])
        problems.add(None, result.warnings)
        counts[:] = [counts[0] + result.count, counts[1] + len(failing), counts[2] + len(bad)]

    if fmt == "table" and output is None:   # a few points shown of all: gathered
        from .render import _console
        for result, variables, at, bad, _ in job.checks(rtol, atol, gather=True, fast=fast):
            note(result, bad)
            _console().print(check_renderable(result, at, variables, bad))
    else:   # chunk by chunk, as the other commands write: memory bounded by the chunk
        with target(output) as out:
            for number, (result, variables, at, bad, first_row) in enumerate(
                    job.checks(rtol, atol, fast=fast)):
                note(result, bad)
                write_check(result, "plain" if fmt == "table" else fmt, out, variables, at,
                            bad, first_row=first_row, header=number == 0)
                out.flush()
    status = problems.finish()
    if counts[1]:
        if fmt == "table" and output is None:   # the table says why, once
            return 1
        for lines in noted:
            print("\n".join(lines), file=sys.stderr)
        print(f"jacli: {verdict_line(*counts, job.options['rtol'], job.options['atol'])}",
              file=sys.stderr)
        return 1
    return 1 if counts[2] else status


def _run_diff(job: _Job, order: int, fmt: str, output: str | None) -> int:
    from .printer import derivatives, to_jacli, to_json, to_latex

    if output and Path(output).suffix.lower() in _BINARY_SUFFIXES:
        raise JacliError("the derivative program is text: write it to .jac or .txt",
                         origin="-o")
    # a program of arrays, or --shape: each derivative an array, shaped as jax.jacobian's
    shapes = job.shapes if job.given_arrays() else None
    result = derivatives(job.program, job.outputs, job.inputs, order, shapes)
    text = {"jacli": to_jacli, "latex": to_latex, "json": to_json}[fmt](result)
    with target(output) as f:
        f.write(text)
    return 0


def _run_graph(job: _Job, fmt: str, output: str | None) -> int:
    from .graph import to_dot, to_mermaid

    if output and Path(output).suffix.lower() in _BINARY_SUFFIXES:
        raise JacliError("the graph is text: write it to .dot, .mmd or .txt", origin="-o")
    shapes = None
    if job.at:
        _refuse_arrays(job, "graph")
    elif job.given_arrays():   # a program of arrays, or --shape: every node's shape
        from .shapes import infer_shapes
        shapes = infer_shapes(job.program.tape, job.shapes)
    trace = job.program.trace(job.at, None, job.outputs) if job.at else None
    text = (to_dot if fmt == "dot" else to_mermaid)(job.program, job.outputs,
                                                    trace.values if trace else None, shapes)
    with target(output) as f:
        f.write(text)
    problems = _Problems(job.source)
    problems.add(None, trace.warnings if trace else [])
    return problems.finish()


def _run_chain(job: _Job, fmt: str, output: str | None) -> int:
    from .chain_view import chain_renderable, write_chain

    if output and Path(output).suffix.lower() in (".npy", ".npz"):
        raise JacliError("the chain is text: write it to .txt or .jsonl", origin="-o")
    if fmt == "csv":
        raise JacliError("chain writes table, plain or json", origin="--format")
    result = job.program.chain(job.at, job.inputs, job.outputs)
    if fmt == "table" and output is None:
        from .render import _console
        _console().print(chain_renderable(result))
    else:
        with target(output) as f:
            write_chain(result, "plain" if fmt == "table" else fmt, f)
    problems = _Problems(job.source)
    problems.add(None, result.warnings)
    return problems.finish()


def _run_sparsity(job: _Job, fmt: str, output: str | None) -> int:
    from .sparsity_view import grid, to_csv, to_json, to_plain

    if output and Path(output).suffix.lower() in (".npy", ".npz"):
        raise JacliError("the pattern is text: write it to .txt, .csv or .jsonl", origin="-o")
    shapes = job.given_shapes()
    hessian = job.options["hessian"]
    if not hessian and job.command == "sparsity" and not job.inputs:
        nothing_to_differentiate(job.program, job.outputs)
    structure = job.program.sparsity(shapes, job.inputs, job.outputs, hessian)
    if fmt == "table" and output is None:
        from .render import _console
        sys.stdout.write(grid(structure, _console().width))
        return 0
    text = {"plain": to_plain, "table": to_plain, "json": to_json, "csv": to_csv}[fmt]
    with target(output) as f:
        f.write(text(structure))
    return 0


def _run_sparse(job: _Job, fmt: str, output: str | None) -> int:
    """jac --sparse, hess --sparse: the structural nonzeros per point (sparsity_view.py
    says the layouts), chunk by chunk."""
    from .sparsity_view import SparseReport, save_sparse_npz, write_sparse

    problems = _Problems(job.source)
    suffix = Path(output).suffix.lower() if output else ""
    if suffix == ".npy":
        raise JacliError("--sparse writes .npz (the pattern and its values), not .npy",
                         origin="-o")

    def reports():
        for report, warnings in job.sparse_reports():
            problems.add(report, warnings)
            yield report

    if suffix == ".npz":
        gathered = list(reports())
        with target(output, binary=True) as f:
            save_sparse_npz(gathered, f)
        return problems.finish()
    with target(output) as out:
        for number, report in enumerate(reports()):
            write_sparse(report, "plain" if fmt == "table" else fmt, out, number == 0)
            out.flush()
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
    guard_standard_streams()   # every byte written or an error; stderr never fails a run
    clean_up_on_signals()      # SIGTERM, SIGHUP, SIGXCPU: no temporary file left
    # jacli offers no shell completion: a variable of that name left in the environment
    # must not turn every run into a completion request (exit 1, nothing done).
    os.environ.pop("_JACLI_COMPLETE", None)
    try:
        try:
            _app_for(sys.argv)()
        finally:
            sys.stdout.flush()   # --help, --version: written in full or an error
    except KeyboardInterrupt:
        print("jacli: interrupted", file=sys.stderr)
        sys.exit(130)
    except WriteError as error:
        sys.exit(_write_failed(error))
    except MemoryError:   # `ulimit -v`, a container's limit: no temporary file is left
        print("jacli: error: out of memory: the run needs more memory than this process "
              "may use (give fewer points per run, or raise the limit)", file=sys.stderr)
        sys.exit(1)
    except Exception as error:  # a bug in jacli, not bad input: say so briefly
        if os.environ.get("JACLI_DEBUG"):
            raise
        print(f"jacli: internal error: {type(error).__name__}: {error}\n"
              "  this is a bug in jacli; JACLI_DEBUG=1 shows the traceback", file=sys.stderr)
        sys.exit(70)

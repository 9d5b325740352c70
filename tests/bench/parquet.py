"""D2: Parquet in, a gradient, Parquet out, whole processes (issue 14).

    jacli grad 'x^2*y + sin(z)*exp(x)' --points pts.parquet -o out.parquet

against a hand-written pyarrow + NumPy script doing the same (read the three columns,
the gradient written out, the same seven columns written with pq.write_table), over
1,000,000 rows (100,000 with --quick). Both outputs are read back and compared (names,
order, values) before anything is timed. Target: jacli <= 1.5x the script.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np

PROGRAM = "x^2*y + sin(z)*exp(x)"

REFERENCE = r'''
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

table = pq.read_table(sys.argv[1], columns=["x", "y", "z"])
x, y, z = (table.column(name).to_numpy() for name in ("x", "y", "z"))
ex, sz = np.exp(x), np.sin(z)
columns = {"x": x, "y": y, "z": z, "f1": x * x * y + sz * ex,
           "df1/dx": 2 * x * y + sz * ex, "df1/dy": x * x, "df1/dz": np.cos(z) * ex}
pq.write_table(pa.table(columns), sys.argv[2])
'''


def _runner():
    """The benchmark runner's module (its helpers and its BenchFailure, which it catches):
    __main__ under `python -m tests.bench`."""
    main = sys.modules.get("__main__")
    if getattr(main, "BENCHMARKS", None) is None:
        from . import __main__ as main
    return main


def bench_d2(args, results, rng, tmp: str) -> None:
    bench = _runner()
    BenchFailure, check_close, fmt_size = bench.BenchFailure, bench.check_close, bench.fmt_size
    interleaved, jacli_command, run_process = (bench.interleaved, bench.jacli_command,
                                               bench.run_process)
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        results.add(bench.Row("D2", "Parquet end to end", status="skipped: no pyarrow "
                        "(pip install 'jacli[parquet]')"))
        return
    points = rng.uniform(-2.0, 2.0, (args.points, 3))
    pq.write_table(pa.table({"x": points[:, 0], "y": points[:, 1], "z": points[:, 2]}),
                   Path(tmp, "pts.parquet"))
    Path(tmp, "ref_parquet.py").write_text(REFERENCE)
    jacli_cmd = jacli_command() + ["grad", PROGRAM, "--points", "pts.parquet",
                                   "-o", "out.parquet"]
    ref_cmd = [sys.executable, "ref_parquet.py", "pts.parquet", "out_ref.parquet"]
    print(f"D2 Parquet end to end, {args.points:,} rows "
          f"({fmt_size(Path(tmp, 'pts.parquet'))})\n"
          f"  jacli:     {shlex.join(jacli_cmd)}\n"
          f"  reference: {shlex.join(ref_cmd)}   (pq.read_table, the gradient by hand, "
          "pq.write_table)", flush=True)
    run_process(jacli_cmd, tmp)
    run_process(ref_cmd, tmp)
    got, want = (pq.read_table(Path(tmp, name)) for name in ("out.parquet", "out_ref.parquet"))
    if got.column_names != want.column_names:
        raise BenchFailure(f"D2: columns differ: jacli {got.column_names}, reference "
                           f"{want.column_names}")
    check_close("D2 out.parquet", np.column_stack([c.to_numpy() for c in got.columns]),
                np.column_stack([c.to_numpy() for c in want.columns]))
    print(f"  agree: out.parquet and out_ref.parquet: the same {len(got.column_names)} "
          "columns, numbers equal to rtol=1e-10")
    times = interleaved({"jacli": lambda: run_process(jacli_cmd, tmp),
                         "reference": lambda: run_process(ref_cmd, tmp)}, args.cli_repeats)
    results.compared("D2", f"Parquet end to end, {args.points:,} rows", times,
                     "pyarrow+NumPy", limit=1.5,
                     detail=f"whole processes; median of {args.cli_repeats}")
    for name in ("pts.parquet", "out.parquet", "out_ref.parquet"):
        Path(tmp, name).unlink()

"""Peak memory of a streamed batch: the same program over 1,000,000 and 10,000,000
points, CSV in and CSV out. Run: python -m tests.bench.memory [--rows 1000000,10000000]

Prints each run's peak resident set size (from the kernel's rusage of the child
process) and the ratio of the largest to the smallest: streaming means ~1.

On Linux a child's ru_maxrss starts from its parent's high-water RSS (fork copies
it, exec keeps it), so a child of a large process (this one after writing points,
or the benchmark runner after B2-B4) would report the parent's peak, not its own.
jacli is therefore started by a small launcher (`python -S`, about 11 MiB) that
reports the rusage of its own child.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

PROGRAM = "x^2*y + sin(z)*exp(x)"


def write_points(path: Path, rows: int, chunk: int = 1_000_000) -> None:
    rng = np.random.default_rng(0)
    with path.open("w") as f:
        f.write("x,y,z\n")
        for start in range(0, rows, chunk):
            block = rng.uniform(-2, 2, (min(chunk, rows - start), 3))
            np.savetxt(f, block, delimiter=",", fmt="%.6f")


# Runs argv[1:] with its output thrown away; prints its exit status, seconds and
# ru_maxrss. Kept tiny (no site, no NumPy) so that its own RSS, which its child
# inherits as a floor, stays far below jacli's.
_LAUNCHER = """
import os, subprocess, sys, time
start = time.perf_counter()
with open(os.devnull, "wb") as devnull:
    process = subprocess.Popen(sys.argv[1:], stdout=devnull)
    _, status, usage = os.wait4(process.pid, 0)
print(os.waitstatus_to_exitcode(status), time.perf_counter() - start, usage.ru_maxrss)
"""


def peak_rss(command: list[str]) -> tuple[float, int]:
    """Seconds and peak RSS in bytes of one run, its output thrown away."""
    launcher = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER] + command,
                              stdout=subprocess.PIPE, text=True, check=True)
    status, seconds, maxrss = launcher.stdout.split()
    if int(status) != 0:
        raise SystemExit(f"failed ({status}): {' '.join(command)}")
    return float(seconds), int(maxrss) * 1024   # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", default="1000000,10000000")
    args = parser.parse_args()
    jacli = str(Path(sys.executable).with_name("jacli"))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in (int(r) for r in args.rows.split(",")):
            path = Path(tmp) / f"points_{rows}.csv"
            write_points(path, rows)
            seconds, rss = peak_rss([jacli, "grad", PROGRAM, "--points", str(path),
                                     "--format", "csv"])
            results.append((rows, seconds, rss))
            print(f"{rows:>12,} rows  {seconds:7.1f} s  peak RSS {rss / 2**20:7.1f} MiB",
                  flush=True)
            path.unlink()
    low, high = min(r[2] for r in results), max(r[2] for r in results)
    print(f"peak RSS ratio, largest / smallest: {high / low:.2f}x")


if __name__ == "__main__":
    main()

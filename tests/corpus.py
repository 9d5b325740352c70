"""The shared reference corpus (../shared/corpus): finding it, its cases, its tolerance.

Used by test_corpus.py (the cases through the CLI) and test_diff.py (the cases through
printed derivative programs).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

CASES_PATH = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "cases.jsonl"
NON_FINITE = ("nan", "inf", "-inf")
RTOL = 1e-8                 # the corpus tolerance: |got - ref| <= RTOL * max(1, |ref|)

# In CI the corpus is always laid beside the clone: its absence there is a failure.
MISSING = () if os.environ.get("CI") else pytest.mark.skip(
    reason=f"reference corpus not found at {CASES_PATH}")


def load_cases() -> list[dict]:
    if not CASES_PATH.is_file():
        return []
    with CASES_PATH.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def params(cases: list[dict]) -> list:
    """pytest parameters, one per case, named by its id."""
    if not cases:
        return [pytest.param(None, id="no-corpus", marks=MISSING)]
    return [pytest.param(case, id=case["id"]) for case in cases]


def compare(got, ref, where: str, problems: list[str]) -> None:
    """Append a description of every mismatch between got and ref to problems."""
    if isinstance(ref, list):
        if not isinstance(got, list):
            problems.append(f"{where}: expected a list of {len(ref)}, got {got!r}")
            return
        if len(got) != len(ref):
            problems.append(f"{where}: expected {len(ref)} entries, got {len(got)}: {got!r}")
            return
        for i, (g, r) in enumerate(zip(got, ref)):
            compare(g, r, f"{where}[{i}]", problems)
        return
    if isinstance(ref, str):
        assert ref in NON_FINITE, f"corpus has an unexpected string {ref!r} at {where}"
        if got != ref:
            problems.append(f"{where}: expected {ref!r}, got {got!r}")
        return
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        problems.append(f"{where}: expected the number {ref!r}, got {got!r}")
        return
    if not math.isfinite(got):   # non-finite numbers must be written as strings
        problems.append(f"{where}: expected {ref!r}, got the non-JSON number {got!r}")
        return
    if abs(got - ref) > RTOL * max(1.0, abs(ref)):
        problems.append(f"{where}: expected {ref!r}, got {got!r} "
                        f"(error {abs(got - ref):.3g}, allowed {RTOL * max(1.0, abs(ref)):.3g})")


def write_inputs(case: dict, directory: Path) -> tuple[Path, Path]:
    """The program byte for byte and the points as JSON Lines, as the corpus README says."""
    program = directory / "program.jac"
    with open(program, "w", encoding="utf-8", newline="") as f:
        f.write(case["program"])
    points = directory / "points.jsonl"
    with open(points, "w", encoding="utf-8", newline="") as f:
        for point in case["points"]:
            f.write(json.dumps(point) + "\n")
    return program, points

"""The shared reference corpus (../shared/corpus/cases.jsonl), run through the CLI.

Each case is run as the corpus README says:

    jacli <command> -f PROGRAM --wrt <wrt,...> --points POINTS.jsonl --format json

and every key of `expected` is compared with |got - ref| <= 1e-8 * max(1, |ref|),
the strings "nan"/"inf"/"-inf" exactly, shapes exactly. The bulk runs in process
through typer's CliRunner on `jacli.cli.app` (the same object the console script
runs); one case per command also runs through a real subprocess.
"""

from __future__ import annotations

import json
import os
import math
from functools import lru_cache
from pathlib import Path

import pytest

from conftest import invoke_jacli, run_jacli

CASES_PATH = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "cases.jsonl"
CORE_COMMANDS = ("eval", "grad", "jac")
LATER_COMMANDS = ("hess", "jvp", "vjp")    # run once `jacli <command> --help` exits 0
NON_FINITE = ("nan", "inf", "-inf")
RTOL = 1e-8


def _load_cases() -> list[dict]:
    if not CASES_PATH.is_file():
        return []
    with CASES_PATH.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


CASES = [c for c in _load_cases() if c["command"] in CORE_COMMANDS + LATER_COMMANDS]


# In CI the corpus is always laid beside the clone: its absence there is a failure.
_MISSING = () if os.environ.get("CI") else pytest.mark.skip(
    reason=f"reference corpus not found at {CASES_PATH}")


def _params(cases):
    if not cases:
        return [pytest.param(None, id="no-corpus", marks=_MISSING)]
    return [pytest.param(case, id=case["id"]) for case in cases]


def _first_of_each_command(cases):
    seen, chosen = set(), []
    for case in cases:
        if case["command"] not in seen:
            seen.add(case["command"])
            chosen.append(case)
    return chosen


@lru_cache(maxsize=None)
def _command_exists(command: str) -> tuple[bool, str]:
    code, out, err = run_jacli(command, "--help")
    return code == 0, f"`jacli {command} --help` exits {code}"


def _require_command(command: str) -> None:
    if command in CORE_COMMANDS:
        return
    exists, why = _command_exists(command)
    if not exists:
        pytest.skip(f"jacli {command} is not implemented yet ({why})")


# --- comparing ---------------------------------------------------------------------------

def _compare(got, ref, where: str, problems: list[str]) -> None:
    """Append a description of every mismatch between got and ref to problems."""
    if isinstance(ref, list):
        if not isinstance(got, list):
            problems.append(f"{where}: expected a list of {len(ref)}, got {got!r}")
            return
        if len(got) != len(ref):
            problems.append(f"{where}: expected {len(ref)} entries, got {len(got)}: {got!r}")
            return
        for i, (g, r) in enumerate(zip(got, ref)):
            _compare(g, r, f"{where}[{i}]", problems)
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


def _check_output(case: dict, code: int, stdout: str, stderr: str) -> None:
    assert code == 0, f"exit status {code}; stderr:\n{stderr}"
    lines = [line for line in stdout.split("\n") if line.strip()]
    assert len(lines) == len(case["points"]), (
        f"expected {len(case['points'])} JSON lines, got {len(lines)}:\n{stdout}")
    problems: list[str] = []
    for k, (line, expected) in enumerate(zip(lines, case["expected"])):
        try:
            got = json.loads(line, parse_constant=lambda name: float(name))
        except ValueError as error:
            pytest.fail(f"point {k}: output line is not JSON ({error}): {line!r}")
        assert isinstance(got, dict), f"point {k}: not a JSON object: {line!r}"
        for key, ref in expected.items():
            if key not in got:
                problems.append(f"point {k}: missing key {key!r} in {line}")
                continue
            _compare(got[key], ref, f"point {k} {key}", problems)
    assert not problems, (f"{case['id']} ({case['family']}, {case['command']}) "
                          f"program {case['program']!r}:\n" + "\n".join(problems))


def _write_inputs(case: dict, directory: Path) -> tuple[Path, Path]:
    program = directory / "program.jac"
    with open(program, "w", encoding="utf-8", newline="") as f:
        f.write(case["program"])
    points = directory / "points.jsonl"
    with open(points, "w", encoding="utf-8", newline="") as f:
        for point in case["points"]:
            f.write(json.dumps(point) + "\n")
    return program, points


def _args(case: dict, program: Path, points: Path) -> list[str]:
    return [case["command"], "-f", str(program), "--wrt", ",".join(case["wrt"]),
            "--points", str(points), "--format", "json"]


# --- the tests ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", _params(CASES))
def test_corpus_case(case, tmp_path):
    _require_command(case["command"])
    program, points = _write_inputs(case, tmp_path)
    _check_output(case, *invoke_jacli(*_args(case, program, points)))


@pytest.mark.parametrize("case", _params(_first_of_each_command(CASES)))
def test_corpus_case_subprocess(case, tmp_path):
    _require_command(case["command"])
    program, points = _write_inputs(case, tmp_path)
    _check_output(case, *run_jacli(*_args(case, program, points)))


def test_corpus_has_the_documented_size():
    """Guard against silently running a truncated corpus."""
    if not CASES_PATH.is_file() and not os.environ.get("CI"):
        pytest.skip(f"reference corpus not found at {CASES_PATH}")
    cases = _load_cases()
    assert len(cases) == 150
    assert sum(len(c["points"]) for c in cases) == 450
    assert len({c["id"] for c in cases}) == len(cases)

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
from functools import lru_cache
from pathlib import Path

import pytest

from conftest import invoke_jacli, run_jacli
from corpus import CASES_PATH, compare, load_cases, params, write_inputs

CORE_COMMANDS = ("eval", "grad", "jac")
LATER_COMMANDS = ("hess", "jvp", "vjp")    # run once `jacli <command> --help` exits 0


CASES = [c for c in load_cases() if c["command"] in CORE_COMMANDS + LATER_COMMANDS]


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
            compare(got[key], ref, f"point {k} {key}", problems)
    assert not problems, (f"{case['id']} ({case['family']}, {case['command']}) "
                          f"program {case['program']!r}:\n" + "\n".join(problems))


def _args(case: dict, program: Path, points: Path) -> list[str]:
    return [case["command"], "-f", str(program), "--wrt", ",".join(case["wrt"]),
            "--points", str(points), "--format", "json"]


# --- the tests ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", params(CASES))
def test_corpus_case(case, tmp_path):
    _require_command(case["command"])
    program, points = write_inputs(case, tmp_path)
    _check_output(case, *invoke_jacli(*_args(case, program, points)))


@pytest.mark.parametrize("case", params(_first_of_each_command(CASES)))
def test_corpus_case_subprocess(case, tmp_path):
    _require_command(case["command"])
    program, points = write_inputs(case, tmp_path)
    _check_output(case, *run_jacli(*_args(case, program, points)))


def test_corpus_has_the_documented_size():
    """Guard against silently running a truncated corpus."""
    if not CASES_PATH.is_file() and not os.environ.get("CI"):
        pytest.skip(f"reference corpus not found at {CASES_PATH}")
    cases = load_cases()
    assert len(cases) == 150
    assert sum(len(c["points"]) for c in cases) == 450
    assert len({c["id"] for c in cases}) == len(cases)

"""Every `$ ` command shown in the README's console blocks prints what the README says.

The commands run in order in one scratch directory (holding a copy of samples/), as a
reader would type them, so a file one command writes is there for the next. `jacli` is
this checkout's (`python -m jacli`). Standard error is shown with standard output, as a
terminal would; trailing spaces (Rich pads its tables to the width) are not compared. The
examples run in two halves side by side, each in its own directory. Commands that install, run the test suite or the benchmarks, or need a
tool this machine lacks (Graphviz's `dot`, `jq`) are skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import pytest

from conftest import REPO, _env

README = REPO / "README.md"
NOT_RUN = ("pip install", "pytest", "python -m tests.bench")


class Example(NamedTuple):
    line: int          # where the command starts in the README
    command: str
    expected: str


def examples(text: str) -> list[Example]:
    found: list[Example] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = re.fullmatch(r"(\s*)```console", lines[index])
        index += 1
        if not opening:
            continue
        indent = len(opening.group(1))
        block: list[tuple[int, str]] = []
        while index < len(lines) and lines[index].strip() != "```":
            block.append((index + 1, lines[index][indent:]))
            index += 1
        index += 1
        command: list[str] | None = None
        start, output = 0, []
        for number, line in block + [(0, "$ ")]:
            if line.startswith("$ ") or number == 0:
                if command is not None:
                    found.append(Example(start, "\n".join(command), "\n".join(output)))
                command, start, output = [line[2:]], number, []
            elif line.startswith("> ") and not output and command is not None:
                command.append(line[2:])
            elif command is not None:
                output.append(line)
    return found


def _skipped(command: str) -> str | None:
    if any(command.startswith(prefix) for prefix in NOT_RUN):
        return "installs, tests or benchmarks"
    for tool in ("dot", "jq"):
        if re.search(rf"(^|\|)\s*{tool}\b", command, re.M) and shutil.which(tool) is None:
            return f"needs {tool}"
    return None


def _environment(bin_dir: Path) -> dict:
    env = _env()
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env.pop("NO_COLOR", None)
    return env


def _scratch(root: Path) -> Path:
    root.mkdir()
    shutil.copytree(REPO / "samples", root / "samples")
    return root


def _normalised(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.splitlines()).rstrip("\n")


def _run_in_order(todo: list[Example], work: Path, env: dict) -> list[str]:
    mismatches = []
    for example in todo:
        done = subprocess.run(["bash", "-c", example.command + " 2>&1"], cwd=work, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=60)
        got = _normalised(done.stdout.decode("utf-8", "replace"))
        if got != _normalised(example.expected):
            mismatches.append(f"README.md:{example.line}: $ {example.command}\n"
                              f"--- README\n{example.expected}\n--- got\n{got}")
    return mismatches


def test_the_readme_has_examples_to_check():
    assert len(examples(README.read_text(encoding="utf-8"))) >= 80


def test_every_readme_command_prints_what_the_readme_shows(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "jacli"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m jacli "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    env = _environment(bin_dir)
    todo = [e for e in examples(README.read_text(encoding="utf-8")) if not _skipped(e.command)]
    half = len(todo) // 2
    halves = [(todo[:half], _scratch(tmp_path / "first")),
              (todo[half:], _scratch(tmp_path / "second"))]
    with ThreadPoolExecutor(2) as pool:
        mismatches = sum(pool.map(lambda job: _run_in_order(*job, env), halves), [])
    assert len(todo) >= 80
    assert not mismatches, (f"{len(mismatches)} of {len(todo)} differ:\n\n"
                            + "\n\n".join(mismatches))

"""Shared helpers for the CLI tests: run jacli end to end or in process.

`run_jacli(*args, input=None)` runs `python -m jacli ARGS` as a real subprocess, with
standard output and error piped (so not a terminal), and returns
(returncode, stdout, stderr) as text.

`invoke_jacli(*args, input=None)` runs the same command line in process through
typer's CliRunner on `jacli.cli.app` (the object the console script calls), which is
much faster for bulk cases; it returns the same triple. Any exception other than a
normal exit propagates, so a crash fails the test loudly instead of looking like an
exit status.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUBPROCESS_TIMEOUT = 120


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    # Let a terminal-less run look like a pipe, whatever the caller's settings.
    for key in ("FORCE_COLOR", "COLUMNS", "LINES"):
        env.pop(key, None)
    return env


def sample_path(argument: str) -> str:
    """A file argument of a sample's header command (`samples/...`, `@samples/...`) made
    absolute, so the command runs from any directory."""
    at = "@" if argument.startswith("@") else ""
    path = argument[len(at):]
    return at + str(REPO / path) if path.startswith("samples/") else argument


def _as_bytes(data: str | bytes | None) -> bytes | None:
    if data is None or isinstance(data, bytes):
        return data
    return data.encode("utf-8")


def run_jacli(*args: str, input: str | bytes | None = None,
              cwd: str | os.PathLike | None = None) -> tuple[int, str, str]:
    """Run the real command line in a subprocess; (returncode, stdout, stderr)."""
    completed = subprocess.run(
        [sys.executable, "-m", "jacli", *map(str, args)],
        input=_as_bytes(input) if input is not None else None,
        stdin=subprocess.DEVNULL if input is None else None,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=_env(), cwd=cwd, timeout=SUBPROCESS_TIMEOUT)
    return (completed.returncode, completed.stdout.decode("utf-8"),
            completed.stderr.decode("utf-8"))


def invoke_jacli(*args: str, input: str | bytes | None = None) -> tuple[int, str, str]:
    """Run the command line in process with CliRunner; (returncode, stdout, stderr)."""
    from typer.testing import CliRunner

    from jacli.cli import app

    runner = CliRunner()
    result = runner.invoke(app, [str(a) for a in args], input=_as_bytes(input),
                           catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(name="run_jacli")
def run_jacli_fixture():
    """The subprocess runner: `run_jacli(*args, input=None)`."""
    return run_jacli


@pytest.fixture(name="invoke_jacli")
def invoke_jacli_fixture():
    """The in-process runner: `invoke_jacli(*args, input=None)`."""
    return invoke_jacli

"""Fuzzing: programs generated from jacli's own grammar, arbitrary text and bytes.

Whatever the input, jacli answers with a result or its own error (with a span when
it points into the program), and the command line exits 0 or 2, never with a
traceback. The default run is bounded for CI (Hypothesis generating from the grammar
costs about 0.15 s a program, so the grammar tests take a few seconds); for a long run set
JACLI_FUZZ_EXAMPLES (e.g. JACLI_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz.py), or, for
volume, run the fast fuzzer: python -m tests.fuzz --programs 1000000.
"""

from __future__ import annotations

import os
import warnings
from importlib import resources

from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark
from lark import Lark
from typer.testing import CliRunner

import jacli
from jacli.cli import app

EXAMPLES = int(os.environ.get("JACLI_FUZZ_EXAMPLES", "150"))
# Generating from the grammar is the slow part: bounded apart from the cheap strategies.
GRAMMAR_EXAMPLES = int(os.environ.get("JACLI_FUZZ_EXAMPLES", "20"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large])

GRAMMAR = Lark(resources.files("jacli.grammar").joinpath("jacli.lark").read_text(),
               start="program", parser="lalr")
# Separators the generator would otherwise glue tokens together without.
PROGRAMS = from_lark(GRAMMAR, explicit={"_SEP": st.sampled_from(["\n", ";", " ;\n"]),
                                        "NAME": st.sampled_from(["x", "y", "z", "a1", "t_2"]),
                                        "LET": st.just("let ")})
TOKENS = st.sampled_from(["x", "y", "2", ".5", "1e3", "+", "-", "*", "/", "^", "**", "(", ")",
                          ",", ";", "\n", "=", "let ", "sin", "max", "atan2", "pi", "e", " ",
                          "#", "\t", "\r\n", "θ", "\x00", "0x1", "2x", "1_0"])


def _check(source: str) -> None:
    """Compiles and evaluates, or raises JacliError; nothing else escapes."""
    try:
        program = jacli.compile(source)
        point = {name: 0.7 for name in program.variables}
        with warnings.catch_warnings():
            warnings.simplefilter("error")   # no raw NumPy RuntimeWarning may escape
            # (a shape error, `x@.2`, is found by the run's shape pass: also clean)
            result = program.jacobian(point)
    except jacli.JacliError as error:
        assert error.message
        if error.span is not None:
            assert 0 <= error.span[0] <= len(source)
        return
    assert result.value.shape == (len(program.outputs),)
    assert result.jacobian.shape == (len(program.outputs), len(program.variables))


@settings(FUZZ, max_examples=GRAMMAR_EXAMPLES)
@given(PROGRAMS)
def test_programs_from_the_grammar_compile_and_run_or_fail_cleanly(source):
    _check(source)


@FUZZ
@given(st.lists(TOKENS, max_size=25).map("".join))
def test_token_soup_never_escapes(source):
    _check(source)


@FUZZ
@given(st.text(max_size=60))
def test_arbitrary_text_never_escapes(source):
    _check(source)


@settings(max_examples=max(20, EXAMPLES // 5), deadline=None)
@given(st.binary(max_size=60))
def test_arbitrary_bytes_through_the_cli_exit_0_or_2(data):
    result = CliRunner().invoke(app, ["eval", "-f", "-", "--at", "x=1", "--allow-unused"],
                                input=data, catch_exceptions=False)
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output


@settings(max_examples=max(20, EXAMPLES // 5), deadline=None)
@given(st.lists(st.text(alphabet="xy01.,-e\"\n \ufeffna", max_size=12), max_size=6))
def test_arbitrary_points_files_never_escape(lines):
    data = "x,y\n" + "\n".join(lines)
    result = CliRunner().invoke(app, ["eval", "x*y", "--points", "-", "--format", "json"],
                                input=data.encode(), catch_exceptions=False)
    assert result.exit_code in (0, 1, 2), result.output
    if result.exit_code != 2:   # one JSON line per row, bad rows included
        body = [line for line in result.stdout.splitlines() if line.startswith("{")]
        rows = [line for line in data.split("\n")[1:]]
        while rows and not rows[-1].strip():
            rows.pop()
        assert len(body) == len(rows)


def test_the_generator_reaches_valid_programs():
    """The grammar strategy is not vacuous: it reaches programs that compile and read a
    variable. Searched for (find), not counted in a fixed sample of 25: Hypothesis mixes
    in constants it mines from every loaded module, the test files included, so what a
    fixed sample holds depends on which tests ran before (one compiling program in 25
    after tests/test_[a-f]*.py)."""

    def compiles_with_a_variable(source: str) -> bool:
        try:
            return bool(jacli.compile(source).variables)
        except jacli.JacliError:
            return False

    found = find(PROGRAMS, compiles_with_a_variable,
                 settings=settings(max_examples=200, deadline=None, database=None,
                                   derandomize=True, phases=[Phase.generate],
                                   suppress_health_check=list(HealthCheck)))
    assert jacli.compile(found).variables


def test_the_fast_fuzzer_finds_nothing_in_a_short_run():
    """tests/fuzz.py is the long-run fuzzer (python -m tests.fuzz --programs 100000);
    a short run here keeps it working, and shows it reaches both outcomes."""
    from fuzz import run

    tally = run(2000, seed=1)
    assert tally["ok"] > 200 and tally["error"] > 200, tally


def test_a_shape_error_found_at_run_time_is_a_clean_failure():
    _check("x@.2")   # scalars have no matrix product: the run's shape pass says so

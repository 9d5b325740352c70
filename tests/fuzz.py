"""A fast random-program fuzzer for long runs: python -m tests.fuzz --programs 100000

Programs are built from the productions of grammar/jacli.lark (statements, `let`,
named and unnamed outputs, every operator and function, every number form, comments,
separators), and a fraction are then damaged (a character dropped, repeated or
replaced) to reach the error paths. Each must either compile and evaluate (value,
Jacobian; no NumPy RuntimeWarning escaping) or raise jacli's own error. Hypothesis's
grammar strategy (tests/test_fuzz.py) explores more cleverly but about a thousand times
more slowly; this one is for volume.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import warnings

import jacli
from jacli.prims import FUNCTIONS, PRIMITIVES, VARIADIC

# scalar programs: the elementwise functions (array functions need array values)
SCALAR_FUNCTIONS = {name: arity for name, arity in FUNCTIONS.items()
                    if PRIMITIVES[name].shape is None}

NUMBERS = ["2", "2.", ".5", "2.5", "1e-3", "6.02E23", "15e-1", "0.2e1", "0", "1e309", "1e-400"]
NAMES = ["x", "y", "z", "a1", "t_2"]
BINARY = ["+", "-", "*", "/", "^", "**"]
NOISE = list("()+-*/^,;=#\n \t.e0123456789xyzθ\x00") + ["let ", "pi", "e", "sin(", "**"]


def expression(rng: random.Random, names: list[str], size: int) -> str:
    """A random expression of about `size` operations, built without recursion."""
    parts = [rng.choice(names + NUMBERS + ["pi", "e"]) for _ in range(size + 1)]
    while len(parts) > 1:
        i = rng.randrange(len(parts) - 1)
        left, right = parts[i], parts[i + 1]
        kind = rng.random()
        if kind < 0.5:
            merged = f"{left} {rng.choice(BINARY)} {right}"
        elif kind < 0.65:
            merged = f"({left}){rng.choice(BINARY)}{rng.choice(['', '-', '+'])}{right}"
        else:
            name = rng.choice(sorted(SCALAR_FUNCTIONS))
            arity = SCALAR_FUNCTIONS[name]
            args = [left, right] if arity in (2, VARIADIC) else [f"{left} - {right}"]
            if arity == VARIADIC and rng.random() < 0.3:
                args.append(rng.choice(names + NUMBERS))
            merged = f"{name}({', '.join(args)})"
        if rng.random() < 0.1:
            merged = rng.choice(["-", "+", "- -"]) + f"({merged})"
        parts[i:i + 2] = [merged]
    return parts[0]


def program(rng: random.Random) -> str:
    names, lines = list(NAMES[:rng.randint(1, 3)]), []
    for k in range(rng.randint(1, 4)):
        expr = expression(rng, names, rng.randint(0, 6))
        kind = rng.random()
        if kind < 0.3:
            lines.append(f"let v{k} = {expr}")
            names.append(f"v{k}")
        elif kind < 0.6:
            lines.append(f"out{k} = {expr}")
        else:
            lines.append(expr)
        if rng.random() < 0.2:
            lines[-1] += "  # a comment; with a separator"
    text = rng.choice(["\n", ";", " ; ", "\r\n"]).join(lines)
    if rng.random() < 0.3:   # damage it
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(text) + 1)
            action = rng.random()
            if action < 0.4:
                text = text[:i] + text[i + 1:]
            elif action < 0.7:
                text = text[:i] + rng.choice(NOISE) + text[i:]
            else:
                text = text[:i] + text[i:i + 3] * 2 + text[i + 3:]
    return text


def check(source: str) -> str:
    """'ok', 'error' (jacli's own), or raises on anything else."""
    try:
        compiled = jacli.compile(source)
    except jacli.JacliError as error:
        assert error.message, source
        assert error.span is None or 0 <= error.span[0] <= len(source), source
        return "error"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = compiled.jacobian({name: 0.7 for name in compiled.variables})
    assert result.jacobian.shape == (len(compiled.outputs), len(compiled.variables)), source
    return "ok"


def run(count: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    tally = {"ok": 0, "error": 0}
    for _ in range(count):
        source = program(rng)
        try:
            tally[check(source)] += 1
        except Exception:
            print(f"FAILED on {source!r}", file=sys.stderr)
            raise
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--programs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    tally = run(args.programs, args.seed)
    print(f"{args.programs:,} programs (seed {args.seed}): {tally['ok']:,} compiled and "
          f"evaluated, {tally['error']:,} rejected with jacli's error, 0 escaped; "
          f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()

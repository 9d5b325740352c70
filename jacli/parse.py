"""Program text -> tape.

An LALR(1) shift-reduce loop calls the callbacks of `_TapeBuilder` as it reduces each
rule, so the tape is built in one pass with no parse tree and no recursion: 100,000-deep
nesting parses like anything else. Every value passed up between callbacks is an
`_Expr`: a node index and the source span it came from.

Lark computes the LALR tables from grammar/jacli.lark. They are kept, as plain data, in
grammar/jacli_lalr.py (`python -m jacli.parse` writes it), so a run of jacli needs no Lark
at all: importing and setting up Lark would cost more than the rest of a one-point
gradient. When the grammar and that file disagree, the tables are made again with Lark.
"""

from __future__ import annotations

import itertools
import os
import re
from typing import NamedTuple

from .errors import JacliError, line_col, shorten
from .prims import ARRAY_FUNCTIONS, CONSTANTS, FUNCTIONS, VARIADIC
from .tape import Tape, paused_gc

_BINARY_OPS = {"PLUS": "add", "MINUS": "sub", "STAR": "mul", "SLASH": "div", "POW": "pow",
               "AT": "matmul"}

# The functions a program may call, with their arity, are prims.FUNCTIONS (the one table;
# VARIADIC: min and max, which also take one argument: then they are the reductions
# amax/amin). The ops the parser emits for syntax (a literal, a subscript, one-argument
# max/min, @) are not in it: they are not callable by name.
#: Names a program may not use as a variable or define: the functions of v1. The array
#: functions' names stay free (`mean = (a + b)/2` is a v1 program), and calls still call.
_RESERVED = frozenset(FUNCTIONS) - frozenset(ARRAY_FUNCTIONS)
#: The functions that take `axis=k`, and the axis when it is not written.
AXIS_FUNCTIONS: dict[str, int | None] = {
    "sum": None, "mean": None, "prod": None, "max": None, "min": None, "norm": None,
    "logsumexp": None, "softmax": -1,
}

_EXPECTED_WORDS = {  # terminal -> how an error message names it, in this order
    "NUMBER": "a number", "NAME": "a name", "LPAR": "'('", "MINUS": "'-'", "PLUS": "'+'",
    "STAR": "'*'", "SLASH": "'/'", "POW": "'^'", "RPAR": "')'", "RSQB": "']'",
    "COLON": "':'", "COMMA": "','", "EQUAL": "'='", "_SEP": "a new line or ';'",
    "$END": "the end of the program",
}
# '[' and '@' are valid almost wherever an operand or an operator is: they are left out
# of the lists of what was expected, so the messages of v1 programs stay as they were.
_TOKEN_WORDS = {"$END": "end of program", "_SEP": "end of statement", "LET": "'let'"}


class _Expr(NamedTuple):
    index: int
    start: int
    end: int


class _Integer(NamedTuple):
    """An integer literal of a subscript or of `axis=k`, with its span."""
    value: int
    start: int
    end: int


class _Slice(NamedTuple):
    """`start:stop:step` of a subscript (None for an omitted part), with its span."""
    triple: tuple
    start: int
    end: int


class _Keyword(NamedTuple):
    """`axis=k` in a call."""
    name: str
    value: _Integer
    start: int
    end: int


def _span(first, last) -> tuple[int, int]:
    start = first.start_pos if type(first) is _Token else first.start   # or an _Expr, ...
    end = last.end_pos if type(last) is _Token else last.end
    return start, end


class _TapeBuilder:
    """The callbacks run on each reduction, named as the rules' aliases in the grammar;
    `tape` is the program being built."""

    def __init__(self, source: str):
        self.tape = Tape(source=source)
        self.used_as_input: dict[str, _Token] = {}
        self.pending_outputs: list[tuple[str | None, int, tuple[int, int]]] = []

    # --- expressions ---------------------------------------------------------------
    def number(self, children):
        (tok,) = children
        return _Expr(self.tape.const(float(tok), _span(tok, tok)), tok.start_pos, tok.end_pos)

    def name(self, children):
        (tok,) = children
        name, span = str(tok), _span(tok, tok)
        tape = self.tape
        if name in tape.names:
            return _Expr(tape.names[name], *span)
        if name in CONSTANTS:
            return _Expr(tape.const(CONSTANTS[name], span), *span)
        if name in _RESERVED:
            raise JacliError(f"'{name}' is a function: call it as {name}(...)", span)
        self.used_as_input.setdefault(name, tok)
        return _Expr(tape.var(name, span), *span)

    def parens(self, children):
        lpar, inner, rpar = children
        return _Expr(inner.index, lpar.start_pos, rpar.end_pos)

    def binary(self, children):
        left, op, right = children
        span = _span(left, right)
        return _Expr(self.tape.apply(_BINARY_OPS[op.type], (left.index, right.index), span), *span)

    def array(self, children):
        lsqb, elements, rsqb = children
        span = _span(lsqb, rsqb)
        return _Expr(self.tape.apply("stack", tuple(e.index for e in elements), span), *span)

    def empty_array(self, children):
        lsqb, rsqb = children
        raise JacliError("an array literal needs at least one element: [] has no shape",
                         _span(lsqb, rsqb))

    def elements(self, children):
        return [c for c in children if type(c) is _Expr]

    def index(self, children):
        operand, _lsqb, items, rsqb = children
        span = _span(operand, rsqb)
        spec = tuple(i.triple if type(i) is _Slice else i.value for i in items)
        return _Expr(self.tape.apply("index", (operand.index,), span, params=(spec,)), *span)

    def subscripts(self, children):
        return [c for c in children if type(c) is _Integer or type(c) is _Slice]

    def slice(self, children):
        parts, current = [], None
        for child in children:
            if type(child) is _Integer:
                current = child.value
            else:   # a ':'
                parts.append(current)
                current = None
        parts.append(current)
        parts += [None] * (3 - len(parts))
        if parts[2] == 0:
            step = next(c for c in reversed(children) if type(c) is _Integer)
            raise JacliError("a slice step cannot be zero", _span(step, step))
        start, end = _span(children[0], children[-1])
        return _Slice(tuple(parts), start, end)

    def integer(self, children):
        start, end = _span(children[0], children[-1])
        digits = children[-1]
        if not digits.isdigit():
            raise JacliError(f"an index, a slice bound or an axis is an integer, not "
                             f"{shorten(str(digits))!r}", (start, end))
        value = int(digits)
        return _Integer(-value if len(children) == 2 else value, start, end)

    def keyword(self, children):
        name_tok, _eq, *number = children
        value = self.integer(number)
        return _Keyword(str(name_tok), value, name_tok.start_pos, value.end)

    def unary_sign(self, children):
        sign, operand = children
        span = _span(sign, operand)
        if sign.type == "PLUS":
            return _Expr(operand.index, *span)
        return _Expr(self.tape.apply("neg", (operand.index,), span), *span)

    def arguments(self, children):
        return [c for c in children if type(c) is _Expr or type(c) is _Keyword]

    def call(self, children):
        name_tok, rpar = children[0], children[-1]
        args = children[2] if len(children) == 4 else []
        name, span = str(name_tok), _span(name_tok, rpar)
        arity = FUNCTIONS.get(name)
        if arity is None:
            arguments = [self.tape.source[a.start:a.end] for a in args]
            raise JacliError(f"unknown function '{shorten(name)}'", _span(name_tok, name_tok),
                             hint=(_alias_hint(name, arguments) or _close_matches(name))
                             if len(name) <= 40 else None)
        keywords = [a for a in args if type(a) is _Keyword]
        if keywords:
            args = self._keywords_checked(name, args, keywords)
        params = ()
        if arity == VARIADIC:
            if not args:
                raise JacliError(f"{name}() takes 1 or more arguments, got 0", span)
            if len(args) == 1:   # max(a), min(a): the largest / smallest element
                name = "amax" if name == "max" else "amin"
                params = (keywords[0].value.value if keywords else None,)
            elif keywords:
                raise JacliError(f"axis= is only accepted by {name}() with one argument: "
                                 f"with {len(args)} it is elementwise",
                                 _span(keywords[0], keywords[0]))
        elif len(args) != arity:
            plural = "argument" if arity == 1 else "arguments"
            raise JacliError(f"{name}() takes {arity} {plural}, got {len(args)}", span)
        elif name in AXIS_FUNCTIONS:
            params = (keywords[0].value.value if keywords else AXIS_FUNCTIONS[name],)
        return _Expr(self.tape.apply(name, tuple(a.index for a in args), span, params), *span)

    def _keywords_checked(self, name: str, args: list, keywords: list) -> list:
        """The positional arguments, once the keyword arguments are found valid."""
        for keyword in keywords:
            where = _span(keyword, keyword)
            if keyword.name != "axis":
                raise JacliError(f"unknown keyword argument '{shorten(keyword.name)}': the "
                                 "one keyword argument is axis=k", where)
            if name not in AXIS_FUNCTIONS:
                raise JacliError(f"{name}() takes no axis=", where,
                                 hint="axis= is accepted by " + ", ".join(AXIS_FUNCTIONS))
        if len(keywords) > 1:
            raise JacliError("axis= is given twice", _span(keywords[1], keywords[1]))
        if args[-1] is not keywords[0]:
            raise JacliError("axis= comes after the positional arguments",
                             _span(keywords[0], keywords[0]))
        return args[:-1]

    # --- statements ----------------------------------------------------------------
    def _define(self, name_tok: _Token, value: _Expr) -> None:
        name, span = str(name_tok), _span(name_tok, name_tok)
        if name in CONSTANTS:
            raise JacliError(f"'{name}' is a constant and cannot be defined", span)
        if name in _RESERVED:
            raise JacliError(f"'{name}' is a function and cannot be defined", span)
        if name in self.tape.names:
            raise JacliError(f"'{shorten(name)}' is already defined", span)
        if name in self.used_as_input:
            first = self.used_as_input[name]
            line, _ = line_col(self.tape.source, first.start_pos)
            raise JacliError(f"'{shorten(name)}' is defined here but was used earlier "
                             f"(line {line}) "
                             "as an input: define a name before using it", span)
        self.tape.names[name] = value.index

    def output_unnamed(self, children):
        (value,) = children
        self.pending_outputs.append((None, value.index, (value.start, value.end)))

    def output_named(self, children):
        name_tok, _eq, value = children
        self._define(name_tok, value)
        self.pending_outputs.append((str(name_tok), value.index, _span(name_tok, value)))

    def let(self, children):
        let_tok, name_tok, _eq, value = children
        self._define(name_tok, value)

    def program(self, children):
        pass


class _SpanRecorder(_TapeBuilder):
    """A builder that also notes, per node, the spans a shape error's caret may need:
    a binary operator's token, the subscripts of an index, the elements of a literal,
    the `axis=k` of a call (the first occurrence, for shared nodes)."""

    def __init__(self, source: str):
        super().__init__(source)
        self.details: dict[int, dict] = {}

    def _note(self, result: _Expr, key: str, value) -> _Expr:
        self.details.setdefault(result.index, {}).setdefault(key, value)
        return result

    def binary(self, children):
        return self._note(super().binary(children), "operator", _span(children[1], children[1]))

    def array(self, children):
        return self._note(super().array(children), "items",
                          [(e.start, e.end) for e in children[1]])

    def index(self, children):
        return self._note(super().index(children), "items",
                          [(i.start, i.end) for i in children[2]])

    def call(self, children):
        result = super().call(children)
        args = children[2] if len(children) == 4 else []
        for keyword in (a for a in args if type(a) is _Keyword):
            self._note(result, "axis", _span(keyword, keyword))
        return result


def node_details(source: str) -> tuple[list, dict[int, dict]]:
    """For error messages only (it parses `source` again): the nodes of its tape, and per
    node the spans of its parts (keys "operator", "items", "axis"; see _SpanRecorder)."""
    recorder = _SpanRecorder(source)
    try:
        with paused_gc():
            _run_lalr(source, recorder)
    except JacliError:
        pass
    return recorder.tape.nodes, recorder.details


#: Names of functions in other languages and books -> jacli's form ("{a}": the argument
#: as an operand of ^, "{r}": as written).
ALIASES = {
    "ln": "log", "lg": "log10", "ld": "log2", "lb": "log2", "ln1p": "log1p",
    "arcsin": "asin", "arccos": "acos", "arctan": "atan", "arctan2": "atan2",
    "arsinh": "asinh", "arcsinh": "asinh", "arcosh": "acosh", "arccosh": "acosh",
    "artanh": "atanh", "arctanh": "atanh", "tg": "tan", "asn": "asin", "acs": "acos",
    "sgn": "sign", "signum": "sign", "fabs": "abs", "logistic": "sigmoid",
    "expit": "sigmoid", "power": "pow",
    "sqr": "{a}^2 (or sqrt({r}))", "square": "{a}^2", "pow2": "{a}^2", "cube": "{a}^3",
    "pow3": "{a}^3", "exp2": "2^{a}", "exp10": "10^{a}", "root": "sqrt", "cuberoot": "cbrt",
    # arrays (NumPy, PyTorch, MATLAB names)
    "inverse": "inv", "pinv": "inv", "determinant": "det", "tr": "trace", "average": "mean",
    "linsolve": "solve", "lstsq": "solve", "lse": "logsumexp", "amax": "max", "amin": "min",
    "nanmax": "max", "nanmin": "min", "product": "prod", "vdot": "dot", "inner": "dot",
    "reduce_sum": "sum", "reduce_mean": "mean", "permute": "transpose",
    "matmul": "{a} @ {b}", "mm": "{a} @ {b}", "mv": "{a} @ {b}", "bmm": "{a} @ {b}",
    "stack": "[{all}]", "array": "[{all}]", "vstack": "[{all}]", "asarray": "[{all}]",
}


def _alias_hint(name: str, arguments: list[str] | None) -> str | None:
    """`ln(x)` -> "did you mean log(x)?"; None when `name` is no known alias."""
    target = ALIASES.get(name) or ALIASES.get(name.lower())
    if target is None:
        if name.lower() in FUNCTIONS:    # Sin(x), LOG(x)
            target = name.lower()
        else:
            return None
    if arguments is None or not all(arguments):
        arguments = ["x"]
    if "{b}" in target:   # matmul(A, x) -> A @ x
        a, b = arguments if len(arguments) == 2 else ["A", "x"]
        return f"did you mean {target.format(a=_atomic(a), b=_atomic(b))}?"
    if "{all}" in target:   # stack(a, b) -> [a, b]; array([1, 2]) -> [1, 2]
        if len(arguments) == 1 and arguments[0].startswith("["):
            return f"did you mean {arguments[0]}?"
        return f"did you mean {target.format(all=', '.join(arguments))}?"
    if "{" in target:
        if len(arguments) != 1:
            arguments = ["x"]
        return f"did you mean {target.format(a=_atomic(arguments[0]), r=arguments[0])}?"
    return f"did you mean {target}({', '.join(arguments)})?"


def _atomic(text: str) -> str:
    """`text` as an operand of ^: parenthesised unless it is a name, number or call."""
    text = text.strip()
    if re.fullmatch(r"[A-Za-z0-9_.]+", text):
        return text
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*\(.*\)", text, re.DOTALL) or text.startswith("("):
        depth = 0   # the first '(' must close at the very end
        for i, char in enumerate(text):
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth == 0 and char == ")":
                return text if i == len(text) - 1 else f"({text})"
    return f"({text})"


def _close_matches(name: str) -> str:
    import difflib   # only for this message: kept out of every run's start-up

    known = sorted(FUNCTIONS)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    if not close:  # always name some: the closest three by similarity
        close = sorted(known, key=lambda k: -difflib.SequenceMatcher(None, name, k).ratio())[:3]
    return "did you mean " + ", ".join(close) + "?"


# The terminals of grammar/jacli.lark as one regular expression, scanned in C by
# re.finditer: several times faster than Lark's lexer, which matches token by token in
# Python. test_parse.py checks that the two lexers agree (on ASCII text). Digits are
# [0-9], not \d: the language is ASCII, and \d would take an Arabic-Indic '٣' for a 3
# (the grammar's \d only matters to Lark's lexer, which runs in the tests alone).
_TOKEN_RE = re.compile(r"""
    (?P<NUMBER>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<NAME>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<POW>\*\*|\^)
  | (?P<STAR>\*) | (?P<PLUS>\+) | (?P<MINUS>-) | (?P<SLASH>/)
  | (?P<LPAR>\() | (?P<RPAR>\)) | (?P<COMMA>,) | (?P<EQUAL>=)
  | (?P<_SEP>[;\n])
  | (?P<SKIP>[ \t\r\f]+|\#[^\n]*)
  | (?P<AT>@) | (?P<LSQB>\[) | (?P<RSQB>\]) | (?P<COLON>:)     # last: v1 programs lex as fast
  | (?P<BAD>.)
""", re.VERBOSE | re.DOTALL)


class _Token(str):
    """A token: its text, `type` (the grammar's terminal name), `start_pos` and `end_pos`."""
    __slots__ = ("type", "start_pos", "end_pos")


def _token(kind: str, text: str, start: int, end: int) -> _Token:
    token = _Token(text)
    token.type, token.start_pos, token.end_pos = kind, start, end
    return token


_DEPTH = {"LPAR": 1, "LSQB": 1, "RPAR": -1, "RSQB": -1}


def tokens(source: str):
    """The tokens of `source`, with type, text, start_pos and end_pos. A line break inside
    ( ) or [ ] continues the statement: it is no token."""
    stream = _raw_tokens(source)
    return _join_bracketed_lines(stream) if "\n" in source else stream


def _raw_tokens(source: str):
    for match in _TOKEN_RE.finditer(source):
        kind = match.lastgroup
        if kind == "SKIP":
            continue
        if kind == "BAD":
            raise _unexpected_character(source, match.start())
        text = match.group()
        if kind == "NAME" and text == "let":
            kind = "LET"
        yield _token(kind, text, match.start(), match.end())


def _join_bracketed_lines(stream):
    depth = 0
    for token in stream:
        kind = token.type
        if kind in _DEPTH:
            depth = max(0, depth + _DEPTH[kind])
        elif depth and kind == "_SEP" and token == "\n":
            continue
        yield token


# --- the LALR(1) tables and the shift-reduce loop ----------------------------------------

class _Spliced(list):
    """The children of a helper rule Lark made for `(...)*`: spliced into the parent's."""


class _Tables(NamedTuple):
    start: int
    end: int
    rules: tuple     # (rule name, length, callback or "" (pass the child on, or splice
                     # it for a helper), whether helper children are spliced in)
    actions: tuple   # per state: symbol -> state to shift to (>= 0), or ~rule to reduce


def tables_from_grammar(grammar: str) -> _Tables:
    """The LALR(1) tables Lark computes for `grammar`, as plain data."""
    from lark import Lark
    from lark.parsers.lalr_analysis import Shift

    lark = Lark(grammar, start="program", parser="lalr", keep_all_tokens=True,
                maybe_placeholders=False)
    table = lark.parser.parser.parser.parse_table
    rules = list(lark.rules)
    index = {id(rule): i for i, rule in enumerate(rules)}

    def callback(rule) -> str:
        if rule.alias:
            return str(rule.alias)
        if rule.origin.name.startswith("_") or (rule.options.expand1
                                                and len(rule.expansion) == 1):
            return ""    # `?rule: child` passes its child on; `__helper` is spliced
        return str(rule.origin.name)

    # Lark numbers its states differently from run to run: number them in the order a
    # breadth-first walk from the start state meets them, so the tables are always the same.
    start, end = table.start_states["program"], table.end_states["program"]
    order = {start: 0}
    walk = [start]
    for state in walk:   # grows while it is walked
        for symbol, (action, arg) in sorted(table.states.get(state, {}).items()):
            if action is Shift and arg not in order:
                order[arg] = len(order)
                walk.append(arg)
    actions = tuple(
        {str(symbol): (order[arg] if action is Shift else ~index[id(arg)])
         for symbol, (action, arg) in sorted(table.states.get(state, {}).items())}
        for state in order)
    return _Tables(order[start], order[end],
                   tuple((str(r.origin.name), len(r.expansion), callback(r),
                          any(s.name.startswith("_") and not s.is_term for s in r.expansion))
                         for r in rules),
                   actions)


def _grammar_path(name: str) -> str:
    """A file of the grammar package (grammar/ in a checkout, jacli/grammar/ installed)."""
    from . import grammar

    return os.path.join(os.path.dirname(grammar.__file__), name)


def write_tables() -> None:
    """Write the tables of jacli.lark to jacli_lalr.py beside it."""
    import lark

    with open(_grammar_path("jacli.lark"), encoding="utf-8") as f:
        grammar = f.read()
    tables = tables_from_grammar(grammar)
    lines = [f'"""LALR(1) tables of jacli.lark, computed by Lark {lark.__version__}; written by '
             '`python -m jacli.parse`.\n\nDo not edit: jacli/parse.py reads them, and makes '
             'them again with Lark\nwhen GRAMMAR is not the text of jacli.lark."""',
             "", f"GRAMMAR = {grammar!r}", "", f"START = {tables.start}",
             f"END = {tables.end}", "", "RULES = ("]
    lines += [f"    {rule!r}," for rule in tables.rules]
    lines += [")", "", "ACTIONS = ("]
    lines += [f"    {state!r}," for state in tables.actions]
    lines += [")", ""]
    with open(_grammar_path("jacli_lalr.py"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


_tables: _Tables | None = None


def _load_tables() -> _Tables:
    global _tables
    if _tables is None:
        from .grammar import jacli_lalr as kept

        with open(_grammar_path("jacli.lark"), encoding="utf-8") as f:
            grammar = f.read()
        if grammar == kept.GRAMMAR:
            _tables = _Tables(kept.START, kept.END, kept.RULES, kept.ACTIONS)
        else:   # the grammar was edited since the tables were written
            _tables = tables_from_grammar(grammar)
    return _tables


def _splice(children: list) -> _Spliced:
    return children if type(children) is _Spliced else _Spliced(children)


def _run_lalr(source: str, builder: _TapeBuilder) -> None:
    tables = _load_tables()
    rules, actions, end = tables.rules, tables.actions, tables.end
    # Per rule: the builder's callback; for a helper rule, _splice; else None: the
    # rule's only child is passed on as it is.
    callbacks = [getattr(builder, callback) if callback
                 else _splice if name.startswith("_") else None
                 for name, _, callback, _ in rules]
    states, values = [tables.start], []
    for token in itertools.chain(tokens(source), [_token("$END", "", len(source), len(source))]):
        while True:
            action = actions[states[-1]].get(token.type)
            if action is None:
                action = _error_reduction(actions[states[-1]], token, rules)
                if action is None:
                    raise _syntax_error(source, token,
                                        _in_context(actions[states[-1]], values))
            if action >= 0:
                states.append(action)
                values.append(token)
                break
            rule = ~action
            name, size, _, splices = rules[rule]
            if size:
                children = values[-size:]
                del values[-size:], states[-size:]
            else:
                children = []
            if splices:
                children = _flatten(children)
            call = callbacks[rule]
            value = children[0] if call is None else call(children)
            states.append(actions[states[-1]][name])
            values.append(value)
            if states[-1] == end:
                return


def _in_context(expected: dict, values: list) -> dict:
    """What a state expects, less the closing bracket of the other kind than the one open
    (LALR merges the states of `(x` and `[x`): only `]` where a `[` is the innermost open
    bracket, only `)` where it is not, as before there were brackets."""
    innermost, closed = None, 0   # a `]` or `)` not reduced yet closes the one before it
    for value in reversed(values):
        if type(value) is _Token:
            if value.type in ("RPAR", "RSQB"):
                closed += 1
            elif value.type in ("LPAR", "LSQB"):
                if not closed:
                    innermost = value.type
                    break
                closed -= 1
    drop = "RPAR" if innermost == "LSQB" else "RSQB"
    return {t: a for t, a in expected.items() if t != drop} if drop in expected else expected


def _error_reduction(state: dict, token: _Token, rules) -> int | None:
    """A name just read inside a call's parentheses may still become `axis=`, so its
    state is not the one a name has elsewhere, which reduces it on any lookahead: where
    the program then ends, reduce it all the same, so the error is found where it was
    before keyword arguments (`sin(x` expects "')' or ','"). None elsewhere."""
    if token.type not in ("$END", "_SEP") or "EQUAL" not in state:
        return None
    for action in state.values():
        if action < 0 and rules[~action][2] == "name":
            return action
    return None


def _flatten(children: list) -> _Spliced:
    """Splice helper-rule children in place; reusing the left one keeps `a, b, c, ...`
    linear (the helper rules are left recursive)."""
    first = children[0]
    flat = first if type(first) is _Spliced else _Spliced([first])
    for child in children[1:]:
        if type(child) is _Spliced:
            flat.extend(child)
        else:
            flat.append(child)
    return flat


def parse(source: str) -> Tape:
    """Parse a program into its tape, or raise JacliError with a span into `source`."""
    builder = _TapeBuilder(source)
    try:
        with paused_gc():
            _run_lalr(source, builder)
    except JacliError as error:
        raise error.with_source(source)
    _name_outputs(builder.tape, builder.pending_outputs)
    return builder.tape


def _name_outputs(tape: Tape, pending) -> None:
    if not pending:
        raise JacliError("the program has no output: write an expression, or `name = expr`",
                         None, tape.source)
    for position, (name, index, span) in enumerate(pending, start=1):
        name = name or f"f{position}"
        if name in tape.outputs:
            raise JacliError(f"two outputs are named '{shorten(name)}'", span, tape.source)
        tape.add_output(name, index, span)


def _syntax_error(source: str, token: _Token, expected_symbols) -> JacliError:
    expected = _expected(expected_symbols)
    unclosed = _unclosed_bracket(source, token)
    if token.type == "$END":
        end = len(source.rstrip())
        return JacliError(f"unexpected end of program: expected {expected}", (end, end + 1),
                          source, hint=unclosed)
    if unclosed:   # `sin(x` then a new line: the statement went on
        what = _TOKEN_WORDS.get(token.type, repr(str(token)))
        return JacliError(f"unexpected {what}: expected {expected}",
                          (token.start_pos, token.end_pos), source, hint=unclosed)
    if set(expected_symbols) == {"NUMBER", "MINUS"}:   # after `name=` in a call
        return JacliError(f"unexpected {_TOKEN_WORDS.get(token.type, repr(str(token)))}: "
                          f"expected {expected}", (token.start_pos, token.end_pos), source,
                          hint="the one keyword argument is axis=k, k an integer literal; "
                               "'=' names a value only at the start of a statement")
    if "COLON" in expected_symbols and token.type in ("NAME", "LPAR", "NUMBER", "LSQB"):
        return JacliError(f"unexpected {_TOKEN_WORDS.get(token.type, repr(str(token)))}: "
                          f"expected {expected}", (token.start_pos, token.end_pos), source,
                          hint="indices, slice bounds and steps are integer literals: "
                               "x[0], x[-1], x[1:3], A[:, 0]")
    if token.type == "_SEP":
        position = token.start_pos
        if position and source[position - 1] == "\r":   # CRLF: the line ends at the \r
            position -= 1
        return JacliError(f"unexpected end of statement: expected {expected}",
                          (position, position + 1), source)
    span = (token.start_pos, token.end_pos)
    hinted = _call_without_parentheses(source, token) or _function_definition(source, token)
    if hinted is not None:
        return hinted
    suggestion = _implicit_multiplication(source, token)
    if token.type == "NAME" and token.startswith("_") and token.start_pos > 0 \
            and source[token.start_pos - 1].isdigit():
        return JacliError("'_' is not accepted inside a number", span, source,
                          hint="write the digits without '_'")
    if suggestion and _looks_like_radix_literal(source, token):
        return JacliError("hexadecimal, binary and octal literals are not accepted: write "
                          "the number in decimal", (token.start_pos - 1, token.end_pos), source)
    if suggestion:
        return JacliError("implicit multiplication is not accepted", span, source,
                          hint=f"write {suggestion}")
    what = _TOKEN_WORDS.get(token.type, repr(str(token)))
    return JacliError(f"unexpected {what}: expected {expected}", span, source)


def _unclosed_bracket(source: str, token: _Token) -> str | None:
    """When a line break inside ( ) or [ ] came before `token`: a hint naming the bracket
    left open (the statement went on to the next line); else None."""
    if "\n" not in source:
        return None
    opened, previous_end = [], 0
    try:
        for tok in tokens(source):
            if tok.start_pos >= token.start_pos:
                break
            if tok.type in ("LPAR", "LSQB"):
                opened.append(tok)
            elif tok.type in ("RPAR", "RSQB") and opened:
                opened.pop()
            previous_end = tok.end_pos
    except JacliError:
        pass
    gap = source[previous_end:token.start_pos]
    if not opened or "\n" not in re.sub(r"#[^\n]*", "", source[opened[-1].start_pos:
                                                              token.start_pos]):
        return None
    if token.type not in ("$END",) and "\n" not in gap:
        return None
    line, column = line_col(source, opened[-1].start_pos)
    closing = ")" if opened[-1].type == "LPAR" else "]"
    return (f"the {str(opened[-1])!r} at line {line}, column {column} is not closed, so the "
            f"statement went on past the line break: is a {closing!r} missing?")


def _looks_like_radix_literal(source: str, token: _Token) -> bool:
    """`0x10`, `0b101`, `0o17`: a lone 0 directly followed by x/b/o and more."""
    start = token.start_pos
    return (token.type == "NAME" and len(token) > 1 and token[0] in "xXbBoO"
            and start >= 1 and source[start - 1] == "0"
            and (start < 2 or not (source[start - 2].isalnum() or source[start - 2] == ".")))


#: Characters pasted from papers and word processors -> the ASCII jacli reads.
LOOK_ALIKES = {
    "\u2212": "-", "\u2013": "-", "\u2014": "-", "\u2010": "-", "\u2011": "-",
    "\u00d7": "*", "\u00b7": "*", "\u22c5": "*", "\u2217": "*", "\u2219": "*",
    "\u00f7": "/", "\u2215": "/", "\u2044": "/", "\u03c0": "pi", "\u00b2": "^2",
    "\u00b3": "^3", "\u221a": "sqrt(...)", "\u221b": "cbrt(...)",
}


def _unexpected_character(source: str, pos: int) -> JacliError:
    char = source[pos]
    hint = None
    if not char.isascii():
        import unicodedata   # only for this message

        ascii_form = LOOK_ALIKES.get(char)
        if ascii_form is None and unicodedata.decimal(char, None) is not None:
            ascii_form = str(unicodedata.decimal(char))
        if ascii_form is None:
            folded = unicodedata.normalize("NFKC", char)   # full-width letters, say
            if folded.isascii() and folded.isprintable() and folded.strip():
                ascii_form = folded
        if ascii_form is not None:
            name = unicodedata.name(char, "")
            hint = (f"write {ascii_form} for {char!r} (U+{ord(char):04X}"
                    + (f" {name}" if name else "") + "): programs are ASCII")
        elif char.isalpha():
            hint = "names are ASCII letters, digits and '_'"
        else:
            hint = "programs are ASCII"
    return JacliError(f"unexpected character {char!r}", (pos, pos + 1), source, hint=hint)


def _expected(terminals) -> str:
    words = [w for t, w in _EXPECTED_WORDS.items() if t in terminals]
    if not words:
        return "something else"
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _adjacent(source: str, token: _Token) -> tuple[_Token, int, int] | None:
    """For `2x`, `x y`, `2(x+1)`, `(a)(b)`, `sin x`: the token before `token`, and the span
    of the operand before and of the one starting at `token`; else None."""
    if token.type not in ("NUMBER", "NAME", "LPAR"):
        return None
    seen = []
    for tok in tokens(source):   # the text before `token` has been lexed already
        seen.append(tok)
        if tok.start_pos >= token.start_pos:
            break
    if len(seen) < 2 or seen[-2].type not in ("NUMBER", "NAME", "RPAR", "RSQB"):
        return None
    before, after = seen[-2], seen[-1]
    end = after.end_pos
    if after.type == "LPAR" or (after.type == "NAME" and source[end:end + 1] == "("):
        depth, i = 0, source.find("(", after.start_pos)   # include the parenthesised group
        while i < len(source):
            depth += {"(": 1, ")": -1}.get(source[i], 0)
            if depth == 0:
                end = i + 1
                break
            i += 1
    while source[end:].lstrip(" \t").startswith("["):   # y[1]: its subscripts too
        close = _matching(source, source.index("[", end), "[", "]", 1)
        if close is None:
            break
        end = close + 1
    start = before.start_pos
    if before.type == "RPAR":
        depth, i = 0, before.start_pos
        while i >= 0:
            depth += {")": 1, "(": -1}.get(source[i], 0)
            if depth == 0:
                start = i
                break
            i -= 1
    elif before.type == "RSQB":   # x[0], A[1][2], f(x)[0], [1, 2]: the whole operand
        i = before.start_pos
        while True:
            opening = _matching(source, i, "]", "[", -1)
            if opening is None:
                break
            start = k = opening
            while k > 0 and source[k - 1] in " \t":
                k -= 1
            previous = source[k - 1] if k else ""
            if previous == "]":
                i = k - 1
                continue
            if previous == ")":
                start = _matching(source, k - 1, ")", "(", -1) or start
                while start > 0 and (source[start - 1].isalnum() or source[start - 1] == "_"):
                    start -= 1
            elif previous and (previous.isalnum() or previous in "_."):
                start = k - 1
                while start > 0 and (source[start - 1].isalnum() or source[start - 1] in "_."):
                    start -= 1
            break
    return before, start, end


def _matching(source: str, i: int, this: str, other: str, step: int) -> int | None:
    """The position of the bracket `other` that matches `this` at source[i], walking in
    direction `step`; None if there is none."""
    depth = 0
    while 0 <= i < len(source):
        char = source[i]
        if char == this:
            depth += 1
        elif char == other:
            depth -= 1
            if depth == 0:
                return i
        i += step
    return None


def _implicit_multiplication(source: str, token: _Token) -> str | None:
    """`2x`, `x y`, `2(x+1)`, `(a)(b)`: the explicit form with `*` inserted, else None."""
    adjacent = _adjacent(source, token)
    if adjacent is None:
        return None
    before, start, end = adjacent
    explicit = source[start:before.end_pos] + "*" + source[token.start_pos:end]
    return explicit if len(explicit) <= 60 else source[before.start_pos:before.end_pos] + "*" + str(token)


def _call_without_parentheses(source: str, token: _Token) -> JacliError | None:
    """`sin x`, `ln 2`: a function name directly before an operand."""
    adjacent = _adjacent(source, token)
    if adjacent is None or token.type == "LPAR":
        return None
    before, _, end = adjacent
    if before.type != "NAME" or not (before in FUNCTIONS or _alias_hint(before, None)):
        return None
    argument = source[token.start_pos:end]
    if len(argument) > 40:
        argument = str(token)
    name = str(before)
    hint = _alias_hint(name, [argument]) if name not in FUNCTIONS else f"did you mean {name}({argument})?"
    return JacliError(f"a call of '{name}' needs parentheses around its argument",
                      (before.start_pos, end), source, hint=hint)


def _function_definition(source: str, token: _Token) -> JacliError | None:
    """`f(x) = x^2`, `let f(x) = ...`: a statement whose left of `=` is a call."""
    if token.type not in ("EQUAL", "LPAR"):
        return None
    statement = []
    try:
        for tok in tokens(source):
            if tok.type == "_SEP":
                if tok.start_pos > token.start_pos:
                    break
                statement = []
            else:
                statement.append(tok)
    except JacliError:   # a bad character further on: judge what came before it
        pass
    let = bool(statement) and statement[0].type == "LET"
    head = statement[1:] if let else statement
    if len(head) < 4 or head[0].type != "NAME" or head[1].type != "LPAR":
        return None
    depth = 0
    for i, tok in enumerate(head[1:], start=1):
        depth += {"LPAR": 1, "RPAR": -1}.get(tok.type, 0)
        if depth == 0:
            break
    if depth or i + 1 >= len(head) or head[i + 1].type != "EQUAL" \
            or token.start_pos not in (head[1].start_pos, head[i + 1].start_pos):
        return None
    equal, name = head[i + 1], str(head[0])
    if name in FUNCTIONS or name in CONSTANTS:
        return None
    end = source.find("\n", equal.end_pos)
    body = source[equal.end_pos:end if end >= 0 else len(source)].split(";")[0].split("#")[0]
    body = body.strip() or "..."
    if len(body) > 40:
        body = body[:37] + "..."
    return JacliError("user-defined functions are not part of the language",
                      (head[0].start_pos, head[i].end_pos), source,
                      hint=f"write {'let ' if let else ''}{name} = {body}: a named "
                           f"{'intermediate' if let else 'output'} of its variables")


if __name__ == "__main__":   # python -m jacli.parse: write the tables after editing the grammar
    write_tables()

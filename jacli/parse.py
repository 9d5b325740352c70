"""Program text -> tape.

Lark's LALR parser calls the callbacks of `_TapeBuilder` as it reduces each rule
(an inline transformer), so the tape is built in one pass with no parse tree and no
recursion: 100,000-deep nesting parses like anything else. Every value passed up
between callbacks is an `_Expr`: a node index and the source span it came from.
"""

from __future__ import annotations

import re
import threading
from importlib import resources
from typing import NamedTuple

from lark import Lark, Token, Transformer
from lark.lexer import Lexer
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from .errors import JacliError, line_col
from .prims import CONSTANTS, FUNCTIONS, VARIADIC
from .tape import Tape, paused_gc

_BINARY_OPS = {"PLUS": "add", "MINUS": "sub", "STAR": "mul", "SLASH": "div", "POW": "pow"}

_EXPECTED_WORDS = {  # terminal -> how an error message names it, in this order
    "NUMBER": "a number", "NAME": "a name", "LPAR": "'('", "MINUS": "'-'", "PLUS": "'+'",
    "STAR": "'*'", "SLASH": "'/'", "POW": "'^'", "RPAR": "')'", "COMMA": "','",
    "EQUAL": "'='", "_SEP": "a new line or ';'", "$END": "the end of the program",
}
_TOKEN_WORDS = {"$END": "end of program", "_SEP": "end of statement", "LET": "'let'"}


class _Expr(NamedTuple):
    index: int
    start: int
    end: int


def _span(first, last) -> tuple[int, int]:
    start = first.start if isinstance(first, _Expr) else first.start_pos
    end = last.end if isinstance(last, _Expr) else last.end_pos
    return start, end


class _TapeBuilder(Transformer):
    """The callbacks Lark runs on each reduction; `tape` is the program being built."""

    def __init__(self):
        super().__init__(visit_tokens=False)
        self.tape: Tape | None = None
        self.used_as_input: dict[str, Token] = {}
        self.pending_outputs: list[tuple[str | None, int, tuple[int, int]]] = []

    def start_program(self, source: str) -> None:
        self.tape = Tape(source=source)
        self.used_as_input = {}
        self.pending_outputs = []

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
        if name in FUNCTIONS:
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

    def unary_sign(self, children):
        sign, operand = children
        span = _span(sign, operand)
        if sign.type == "PLUS":
            return _Expr(operand.index, *span)
        return _Expr(self.tape.apply("neg", (operand.index,), span), *span)

    def arguments(self, children):
        return [c for c in children if isinstance(c, _Expr)]

    def call(self, children):
        name_tok, rpar = children[0], children[-1]
        args = children[2] if len(children) == 4 else []
        name, span = str(name_tok), _span(name_tok, rpar)
        arity = FUNCTIONS.get(name)
        if arity is None:
            raise JacliError(f"unknown function '{name}'", _span(name_tok, name_tok),
                             hint=_close_matches(name))
        if arity == VARIADIC and len(args) < 2:
            raise JacliError(f"{name}() takes 2 or more arguments, got {len(args)}", span)
        if arity != VARIADIC and len(args) != arity:
            plural = "argument" if arity == 1 else "arguments"
            raise JacliError(f"{name}() takes {arity} {plural}, got {len(args)}", span)
        return _Expr(self.tape.apply(name, tuple(a.index for a in args), span), *span)

    # --- statements ----------------------------------------------------------------
    def _define(self, name_tok: Token, value: _Expr) -> None:
        name, span = str(name_tok), _span(name_tok, name_tok)
        if name in CONSTANTS:
            raise JacliError(f"'{name}' is a constant and cannot be defined", span)
        if name in FUNCTIONS:
            raise JacliError(f"'{name}' is a function and cannot be defined", span)
        if name in self.tape.names:
            raise JacliError(f"'{name}' is already defined", span)
        if name in self.used_as_input:
            first = self.used_as_input[name]
            line, _ = line_col(self.tape.source, first.start_pos)
            raise JacliError(f"'{name}' is defined here but was used earlier (line {line}) "
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


def _close_matches(name: str) -> str:
    import difflib   # only for this message: kept out of every run's start-up

    known = sorted(FUNCTIONS)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    if not close:  # always name some: the closest three by similarity
        close = sorted(known, key=lambda k: -difflib.SequenceMatcher(None, name, k).ratio())[:3]
    return "did you mean " + ", ".join(close) + "?"


# The terminals of grammar/jacli.lark as one regular expression, scanned in C by
# re.finditer: several times faster than Lark's lexer, which matches token by token in
# Python. Lark still parses (LALR, from the grammar's rules). test_parse.py checks
# that the two lexers agree.
_TOKEN_RE = re.compile(r"""
    (?P<NUMBER>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<NAME>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<POW>\*\*|\^)
  | (?P<STAR>\*) | (?P<PLUS>\+) | (?P<MINUS>-) | (?P<SLASH>/)
  | (?P<LPAR>\() | (?P<RPAR>\)) | (?P<COMMA>,) | (?P<EQUAL>=)
  | (?P<_SEP>[;\n])
  | (?P<SKIP>[ \t\r\f]+|\#[^\n]*)
  | (?P<BAD>.)
""", re.VERBOSE | re.DOTALL)


class _Token(str):
    """A token as Lark's parser needs it, lighter than lark.Token (which is several times
    slower to create): its text, `type`, `start_pos` and `end_pos`."""
    __slots__ = ("type", "start_pos", "end_pos")
    line = column = end_line = end_column = None

    @property
    def value(self) -> str:
        return str(self)


def _token(kind: str, text: str, start: int, end: int) -> _Token:
    token = _Token(text)
    token.type, token.start_pos, token.end_pos = kind, start, end
    return token


def tokens(source: str):
    """The tokens of `source`, with type, text, start_pos and end_pos."""
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


class _RegexLexer(Lexer):
    def __init__(self, lexer_conf):
        pass

    def lex(self, text):   # Lark's interface for a custom lexer class: the whole text
        return tokens(text)


def _load_parser() -> tuple[Lark, _TapeBuilder]:
    grammar = resources.files("jacli.grammar").joinpath("jacli.lark").read_text()
    builder = _TapeBuilder()
    lark = Lark(grammar, start="program", parser="lalr", lexer=_RegexLexer,
                keep_all_tokens=True, transformer=builder, maybe_placeholders=False,
                cache=True)
    return lark, builder


_parser: tuple[Lark, _TapeBuilder] | None = None
_lock = threading.Lock()


def parse(source: str) -> Tape:
    """Parse a program into its tape, or raise JacliError with a span into `source`."""
    global _parser
    with _lock:
        if _parser is None:
            _parser = _load_parser()
        lark, builder = _parser
        builder.start_program(source)
        try:
            with paused_gc():
                lark.parse(source)
            tape, pending = builder.tape, builder.pending_outputs
        except JacliError as error:
            raise error.with_source(source)
        except UnexpectedInput as error:
            raise _syntax_error(lark, source, error) from None
        finally:
            builder.start_program("")   # let go of this program's tape
    _name_outputs(tape, pending)
    return tape


def _name_outputs(tape: Tape, pending) -> None:
    if not pending:
        raise JacliError("the program has no output: write an expression, or `name = expr`",
                         None, tape.source)
    for position, (name, index, span) in enumerate(pending, start=1):
        name = name or f"f{position}"
        if name in tape.outputs:
            raise JacliError(f"two outputs are named '{name}'", span, tape.source)
        tape.add_output(name, index, span)


def _syntax_error(lark: Lark, source: str, error: UnexpectedInput) -> JacliError:
    if isinstance(error, UnexpectedCharacters):
        return _unexpected_character(source, error.pos_in_stream)

    assert isinstance(error, UnexpectedToken)
    token = error.token
    expected = _expected(error.expected)
    if token.type == "$END":
        end = len(source.rstrip())
        return JacliError(f"unexpected end of program: expected {expected}", (end, end + 1),
                          source)
    if token.type == "_SEP":
        position = token.start_pos
        if position and source[position - 1] == "\r":   # CRLF: the line ends at the \r
            position -= 1
        return JacliError(f"unexpected end of statement: expected {expected}",
                          (position, position + 1), source)
    span = (token.start_pos, token.end_pos)
    suggestion = _implicit_multiplication(lark, source, token)
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


def _looks_like_radix_literal(source: str, token: Token) -> bool:
    """`0x10`, `0b101`, `0o17`: a lone 0 directly followed by x/b/o and more."""
    start = token.start_pos
    return (token.type == "NAME" and len(token) > 1 and token[0] in "xXbBoO"
            and start >= 1 and source[start - 1] == "0"
            and (start < 2 or not (source[start - 2].isalnum() or source[start - 2] == ".")))


def _unexpected_character(source: str, pos: int) -> JacliError:
    char = source[pos]
    hint = "names are ASCII letters, digits and '_'" if not char.isascii() else None
    return JacliError(f"unexpected character {char!r}", (pos, pos + 1), source, hint=hint)


def _expected(terminals) -> str:
    words = [w for t, w in _EXPECTED_WORDS.items() if t in terminals]
    if not words:
        return "something else"
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _implicit_multiplication(lark: Lark, source: str, token: Token) -> str | None:
    """`2x`, `x y`, `2(x+1)`, `(a)(b)`: the explicit form with `*` inserted, else None."""
    if token.type not in ("NUMBER", "NAME", "LPAR"):
        return None
    seen = []
    try:
        for tok in tokens(source):
            seen.append(tok)
            if tok.start_pos >= token.start_pos:
                break
    except UnexpectedInput:
        return None
    if len(seen) < 2 or seen[-2].type not in ("NUMBER", "NAME", "RPAR"):
        return None
    before, after = seen[-2], seen[-1]
    end = after.end_pos
    if after.type == "LPAR":  # include the parenthesised group
        depth, i = 0, source.find("(", after.start_pos)
        while i < len(source):
            depth += {"(": 1, ")": -1}.get(source[i], 0)
            if depth == 0:
                end = i + 1
                break
            i += 1
    start = before.start_pos
    if before.type == "RPAR":
        depth, i = 0, before.start_pos
        while i >= 0:
            depth += {")": 1, "(": -1}.get(source[i], 0)
            if depth == 0:
                start = i
                break
            i -= 1
    explicit = source[start:before.end_pos] + "*" + source[after.start_pos:end]
    return explicit if len(explicit) <= 60 else source[before.start_pos:before.end_pos] + "*" + str(after)

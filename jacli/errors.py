"""The one error type of jacli: a message, and where in which text it applies."""

from __future__ import annotations


def line_col(source: str, position: int) -> tuple[int, int]:
    """1-based line and column of a character offset into `source`."""
    line = source.count("\n", 0, position) + 1
    return line, position - (source.rfind("\n", 0, position) + 1) + 1


class JacliError(Exception):
    """Bad input: a program, an option or a points file that jacli cannot use.

    `span` is a (start, end) pair of character offsets into `source`; `origin`
    names that text for the reader ("program", "--at", "points.csv").
    The CLI turns this error into a caret message and exit status 2.
    """

    def __init__(self, message: str, span: tuple[int, int] | None = None,
                 source: str | None = None, origin: str = "program", hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.source = source
        self.origin = origin
        self.hint = hint

    def with_source(self, source: str, origin: str = "program") -> "JacliError":
        if self.source is None:
            self.source, self.origin = source, origin
        return self

    def line_col(self) -> tuple[int, int] | None:
        """1-based line and column of the span's start."""
        if self.span is None or self.source is None:
            return None
        return line_col(self.source, self.span[0])

    def render(self) -> str:
        """The message as the CLI prints it: location, the source line, a caret."""
        where = self.line_col()
        head = f"error: {self.origin}: {self.message}" if self.origin != "program" else \
            f"error: {self.message}"
        if where is None:
            return head + (f"\n  hint: {self.hint}" if self.hint else "")
        line_no, col = where
        start, end = self.span
        line_start = self.source.rfind("\n", 0, start) + 1
        line_end = self.source.find("\n", start)
        if line_end == -1:
            line_end = len(self.source)
        line_text = self.source[line_start:line_end].rstrip("\r")
        # Control characters (a NUL, say) would vanish on a terminal: show them as '?'.
        line_text = "".join(c if c.isprintable() or c == "\t" else "?" for c in line_text)
        width = max(1, min(end, line_end) - start)
        # A very long line is shown as a window around the column.
        shown_col, window = col, 60
        if len(line_text) > 2 * window:
            left = max(0, col - 1 - window)
            right = min(len(line_text), col - 1 + window)
            line_text = ("..." if left else "") + line_text[left:right] + (
                "..." if right < len(line_text) else "")
            shown_col = col - left + (3 if left else 0)
            width = min(width, window)
        # Tabs keep their width so the caret stays under the right character.
        pad = "".join("\t" if ch == "\t" else " " for ch in line_text[:shown_col - 1])
        parts = [f"error: {self.origin}:{line_no}:{col}: {self.message}",
                 f"  {line_text}",
                 f"  {pad}{'^' * width}"]
        if self.hint:
            parts.append(f"  hint: {self.hint}")
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.render()


def shorten(text: str, limit: int = 40) -> str:
    """`text` as a message shows it: cut in the middle when longer than `limit`, with
    its length said, so that a 100,000-character name gives a one-line message."""
    if len(text) <= limit:
        return text
    keep = limit // 2 - 2
    return f"{text[:keep]}...{text[-keep:]} ({len(text):,} characters)"


class ShapeError(Exception):
    """A shape mismatch found by a primitive's shape rule (its message names both shapes);
    the shape pass turns it into a JacliError with the span of the operator or call.

    `where` narrows the caret: the position of the offending subscript of an index or
    element of an array literal (an int), or "axis" for the `axis=k` of a call."""

    def __init__(self, message: str, where: int | str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where

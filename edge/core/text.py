"""Text from outside (product names, SKUs, paths, token names) made safe to show on one line of a terminal or a log."""

from __future__ import annotations


def printable(text: str) -> str:
    """`text` with every character that is not printable (controls, bidi and other format characters, line and
    paragraph separators) written as its escape (`\\x1b`, `\\n`, `\\u202e`): it cannot move the cursor, end the line,
    forge another or reorder what follows."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)

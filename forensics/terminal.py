"""Text from the evidence made safe to show on a terminal.

Log lines are written by whoever sent the request, so a user agent, path or referrer can hold
ESC sequences that recolour, clear or retitle the investigator's terminal, carriage returns that
overwrite what was printed before them, and bidirectional overrides that make text read
differently from what it is. Every command shows such characters escaped (`\\x1b`, `\\u202e`),
so what is on the screen is what is in the data; files written with `--out` keep the exact
bytes.
"""

from __future__ import annotations

import re

# C0 controls and DEL, the C1 controls (a terminal may act on 0x9B as on ESC [), the Unicode
# bidirectional marks, embeddings, overrides and isolates, the line and paragraph separators, and
# lone surrogates (undecodable bytes kept by Python's surrogateescape, which cannot be printed).
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}\u2028\u2029\ud800-\udfff]")
# The same, keeping newlines (a cell of a drawn table may span lines inside its borders), or
# newlines and tabs (a message or a whole rendered block keeps its layout).
_UNSAFE_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f{_BIDI}\u2028\u2029\ud800-\udfff]")
_UNSAFE_IN_TEXT = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}\u2028\u2029\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def printable(text: str, *, newlines: bool = False) -> str:
    """One value (a cell, a path, a user agent) with every control character escaped; with
    `newlines`, line breaks are kept (for a cell drawn inside table borders)."""
    return (_UNSAFE_BUT_NEWLINE if newlines else _UNSAFE).sub(_escape, text)


def printable_text(text: str) -> str:
    """A message or a rendered block: control characters escaped, newlines and tabs kept."""
    return _UNSAFE_IN_TEXT.sub(_escape, text)


def printable_json(text: str) -> str:
    """JSON text with control characters written as JSON escapes (`\\u001b`): still valid JSON
    that reads back to the same strings, and harmless on a terminal."""
    return _UNSAFE_IN_TEXT.sub(_json_escape, text)

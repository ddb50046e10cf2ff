"""Text from the evidence is shown with its control characters escaped (forensics.terminal)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forensics.terminal import printable, printable_json, printable_text

# Each of these acts on a terminal or changes how text reads: colour/clear (ESC, and the C1 CSI
# 0x9b), window title (OSC ... BEL), overwrite (CR, backspace), right-to-left override and isolate,
# line separator, NUL, DEL, and a lone surrogate (an undecodable byte kept by surrogateescape).
HOSTILE = {
    "\x1b[2J": "\\x1b[2J",
    "\x9b31m": "\\x9b31m",
    "\x1b]0;owned\x07": "\\x1b]0;owned\\x07",
    "paid\rfree": "paid\\x0dfree",
    "ab\x08c": "ab\\x08c",
    "txt.\u202eexe": "txt.\\u202eexe",
    "a\u2066b\u2069": "a\\u2066b\\u2069",
    "a\u2028b": "a\\u2028b",
    "nul\x00": "nul\\x00",
    "del\x7f": "del\\x7f",
    "bad\udcff": "bad\\udcff",
}


@pytest.mark.parametrize("raw,shown", HOSTILE.items(), ids=[repr(k) for k in HOSTILE])
def test_control_characters_are_escaped(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert printable_text(raw) == shown
    printable(raw).encode("utf-8")  # printable on any UTF-8 terminal (a surrogate is not)


def test_ordinary_text_is_unchanged() -> None:
    text = "GET /sites/files/roster.xlsx?x=1 «Mozilla/5.0» 東京 ü — 100%"
    assert printable(text) == printable_text(text) == text


def test_newlines_and_tabs() -> None:
    assert printable("a\nb\tc") == "a\\x0ab\\x09c"  # one value: one line
    assert printable("a\nb\tc", newlines=True) == "a\nb\\x09c"  # a cell drawn inside a table
    assert printable_text("a\nb\tc\x1b") == "a\nb\tc\\x1b"  # a message keeps its layout


@given(st.text())
def test_nothing_unsafe_survives(text: str) -> None:
    shown = printable(text)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF for c in shown)
    assert not any(c in shown for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


@given(st.text().filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)))
def test_json_stays_json_with_the_same_strings(text: str) -> None:
    dumped = json.dumps({"v": text}, ensure_ascii=False, indent=2)
    shown = printable_json(dumped)
    assert json.loads(shown) == {"v": text}
    assert printable_text(shown) == shown  # nothing left for the terminal to act on


# --- every command shows log text escaped -----------------------------------------------------------

HOSTILE_LOG = (
    b'203.0.113.9 - - [28/Nov/2022:19:05:01 +0000] "GET /a\x1b[31mred HTTP/1.1" 200 5 "-" '
    b'"ua\x1b]0;pwned\x07 \xe2\x80\xae evil \xc2\x9b2J"\n'
    b'203.0.113.9 - - [28/Nov/2022:19:05:02 +0000] "GET /b HTTP/1.1" 200 5 "-" "ok"\n'
    b"broken \x1b[2J line\r\n"
)
RAW = ("\x1b", "\x07", "\u202e", "\x9b", "\r")


def _clean(output: str) -> None:
    for raw in RAW:
        assert raw not in output, (raw, output)


def test_log_text_reaches_the_terminal_escaped(write_case, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from forensics.cli import app

    runner = CliRunner()
    case = write_case([{"path": "access.log", "format": "combined"}], files={"access.log": HOSTILE_LOG})
    log = str(tmp_path / "access.log")
    out = tmp_path / "out"

    res = runner.invoke(app, ["detect", log, "--format", "combined"])
    assert res.exit_code == 0, res.output
    _clean(res.output)
    assert "/a\\x1b[31mred" in res.output

    res = runner.invoke(app, ["ingest", str(case), "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    _clean(res.output)

    res = runner.invoke(app, ["sql", str(out), "-e", "SELECT path, user_agent FROM requests ORDER BY line_no; "
                              "SELECT line FROM rejects"])
    assert res.exit_code == 0, res.output
    _clean(res.output)
    assert "ua\\x1b]0;pwned\\x07 \\u202e evil \\x9b2J" in res.output and "broken \\x1b[2J line" in res.output

    query = ["query", "client_activity", "--case", str(out), "-p", "client_ip", "203.0.113.9"]
    for fmt in ("table", "csv", "json"):
        res = runner.invoke(app, [*query, "-f", fmt])
        assert res.exit_code == 0, res.output
        _clean(res.output)
    assert json.loads(res.output)[0]["user_agent"] == "ua\x1b]0;pwned\x07 \u202e evil \x9b2J"

    # A file written with --out keeps the exact values: it is evidence, not a screen.
    saved = tmp_path / "activity.csv"
    res = runner.invoke(app, [*query, "-f", "csv", "-o", str(saved)])
    assert res.exit_code == 0, res.output
    assert "ua\x1b]0;pwned\x07 \u202e evil \x9b2J" in saved.read_text(encoding="utf-8")

    # An error that quotes the data is escaped as well.
    res = runner.invoke(app, ["sql", str(out), "-e", "SELECT CAST(path AS INTEGER) FROM requests"])
    assert res.exit_code == 1 and "Error:" in res.output
    _clean(res.output)

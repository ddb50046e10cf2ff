"""Property tests: a reader never crashes and never loses a line, whatever bytes it is given,
and the fast (CSV) path gives exactly what the exact (regex) path gives."""

from __future__ import annotations

from collections import Counter

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from polars.exceptions import PanicException

from forensics.formats import builtin_formats, get_format
from forensics.readers import make_reader
from forensics.readers.text import TextReader

FORMATS = sorted(builtin_formats())

field = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=30)
quoted = st.lists(st.sampled_from([*'abc "\\x%-/=;()é', '\\"', "\\x22"]), max_size=12).map("".join)


@st.composite
def log_lines(draw):
    """Mostly well-formed combined lines with hostile values, plus arbitrary junk lines."""
    if draw(st.booleans()):
        return draw(field)
    ip = draw(st.sampled_from(["192.0.2.1", "2001:db8::1", "unix:", "10.0.0.1, 10.0.0.2", '"10.0.0.1, 10.0.0.2"', "-"]))
    ts = draw(st.sampled_from(["[28/Nov/2022:14:02:00 -0500]", "[31/Feb/2022:25:00:00 +0000]", "[28/Nov/2022:14:02:00]"]))
    req = draw(quoted)
    status = draw(st.sampled_from(["200", "206", "499", "000", "-", "abc"]))
    size = draw(st.sampled_from(["0", "-", "1572864", "12x"]))
    return f'{ip} - - {ts} "{req}" {status} {size} "{draw(quoted)}" "{draw(quoted)}"'


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(log_lines(), min_size=1, max_size=12), name=st.sampled_from(FORMATS))
def test_reader_accounts_for_every_line(lines, name):
    fmt = get_format(name)
    reader = make_reader(fmt, "UTC")
    chunk = ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
    res = reader.read_chunk(1, chunk)
    n = chunk.count(b"\n")
    assert res.requests.height + res.rejects.height + sum(res.skipped.values()) == n
    seen = sorted(res.requests.get_column("line_no").to_list() + res.rejects.get_column("line_no").to_list())
    assert len(seen) == len(set(seen))
    assert all(1 <= x <= n for x in seen)


TEXT_FORMATS = sorted(n for n in FORMATS if get_format(n).family == "text")


@st.composite
def sample_lines(draw, name: str) -> str:
    """A sample line of the format, damaged the ways that make a CSV reading and the layout's
    regex disagree: quotes, escapes, whitespace, fields cut, added after the layout or moved."""
    line = draw(st.sampled_from([s.line for s in get_format(name).samples]))
    for _ in range(draw(st.integers(0, 3))):
        how = draw(st.sampled_from(["insert", "cut", "append", "unquote", "quote", "space"]))
        if how == "insert":
            pos = draw(st.integers(0, len(line)))
            junk = draw(st.sampled_from(['"', '""', '\\"', "\\", "\t", "\r", " ", "  ", "\x0b", "\u2028", "\xa0", "-", "x",
                                         "\x01", "\x1f"]))
            line = line[:pos] + junk + line[pos:]
        elif how == "cut":
            line = line[: draw(st.integers(0, len(line)))]
        elif how == "append":
            line += draw(st.sampled_from([' "x"', " x", ' "a b" c', " ", "\t", ' "', " -", ' "TID_1" "-"', "  y", ' "x" ',
                                          " x\t", " \t", " x\r", ' "a\\"b"', ' "\x01"', ' a"b']))
        elif how == "unquote":
            line = line.replace('"', "", 2)
        elif how == "quote":
            words = line.split(" ")
            k = draw(st.integers(0, len(words) - 1))
            words[k] = f'"{words[k]}"'
            line = " ".join(words)
        else:
            line = line.replace(" ", "  ", 1)
    return line


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(TEXT_FORMATS), lines=st.none())
@example(data=None, lines=['192.0.2.1 - - [28/Nov/2022:14:02:00 -0500] "" 200 0 "" ""a""'], name="combined")
@example(data=None, lines=['192.0.2.1 - - [28/Nov/2022:14:02:00 -0500] "" 200 0 "" """"'], name="combined")
@example(data=None, lines=[get_format("aws_alb").samples[0].line + ' "TID_1" "-" '], name="aws_alb")
@example(data=None, lines=[get_format("combined").samples[0].line + " x\t"], name="combined")
# A quote inside a bare value (the CSV reader keeps it; the line rebuilds the same), in the
# layout's part of a line and in the tail after it; a tail whose quotes or control characters
# JSON escapes, beside lines without one.
@example(data=None, lines=[get_format("aws_alb").samples[0].line.replace("app/", 'ap"p/', 1)], name="aws_alb")
@example(data=None, lines=['192.0.2.1" - - [28/Nov/2022:14:02:00 -0500] "GET / HTTP/1.1" 200 5 "-" "ua"'], name="combined")
@example(data=None, lines=[get_format("aws_s3").samples[0].line.replace(" SigV4 ", ' Sig"V4 ', 1)], name="aws_s3")
@example(
    data=None,
    lines=[get_format("aws_alb").samples[0].line + ' "a\\"b" x"y', get_format("aws_alb").samples[0].line + ' "\x01"',
           get_format("aws_alb").samples[0].line],
    name="aws_alb",
)
@example(
    data=None, lines=[get_format("aws_s3").samples[0].line + ' "k" "v"', get_format("aws_s3").samples[0].line],
    name="aws_s3",
)
# Lines whose damage keeps the chunk's count of quotes (a quoted field written bare beside a bare
# one quoted, in one line or in two), or its length (one line longer, the next shorter).
@example(data=None, name="combined", lines=[
    '192.0.2.1 - - [28/Nov/2022:14:02:00 -0500] "GET / HTTP/1.1" "200" 5 - "ua"',
    '192.0.2.1 - - [28/Nov/2022:14:02:00 -0500] "GET / HTTP/1.1" 200 5 "-" "ua"',
])
@example(data=None, name="combined", lines=[
    '192.0.2.1 - - [28/Nov/2022:14:02:00 -0500] "GET / HTTP/1.1" "200" 5 "-" "ua"',
    '192.0.2.1 - - [28/Nov/2022:14:02:00 -0500] "GET / HTTP/1.1" 200 5 - "ua"',
])
@example(data=None, name="nginx_main", lines=[
    '192.0.2.1 - - [28/Nov/2022:14:02:00 -0500] "GET / HTTP/1.1" 200 5 "-" "ua" "a b"',
    '192.0.2.1 - - [28/Nov/2022:14:02:00 -0500] "GET / HTTP/1.1" 200 5 "-" "ua" "-"',
    '192.0.2.1 - - [28/Nov/2022:14:02:00 -0500] "GET / HTTP/1.1" 200 5 "-" "ua" -',
])
def test_fast_path_equals_exact_path(data, name, lines):
    """Every text format: the fast path's rows and rejects are the exact path's."""
    if lines is None:
        lines = data.draw(st.lists(st.one_of(log_lines(), sample_lines(name)), min_size=1, max_size=12))
    reader = make_reader(get_format(name), "UTC")
    chunk = ("\n".join(lines) + "\n").encode()
    fast = reader.read_chunk(1, chunk)
    reader.fast_enabled = False
    exact = reader.read_chunk(1, chunk)
    assert fast.requests.to_dicts() == exact.requests.to_dicts()
    assert fast.rejects.to_dicts() == exact.rejects.to_dicts()


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_never_crash(data):
    for name in ("combined", "cloudfront", "iis"):
        res = make_reader(get_format(name), "UTC").read_chunk(1, data)
        n = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
        assert res.requests.height + res.rejects.height + sum(res.skipped.values()) == n


def _rows_by_line(res) -> dict[int, tuple]:
    out: dict[int, tuple] = {}
    for r in res.requests.to_dicts():
        out[r["line_no"]] = ("row", tuple(sorted((k, str(v)) for k, v in r.items() if k != "line_no")))
    for r in res.rejects.to_dicts():
        out[r["line_no"]] = ("reject", r["reason"], r["line"])
    return out


hostile = st.sampled_from(
    [
        '192.0.2.9 - - [28/Nov/2022:14:02:00 -0500] "GET /a\\"b HTTP/1.1" 200 5 "-" "x\\"y"',
        '192.0.2.9 - - [28/Nov/2022:14:02:00 -0500] "GET /\rcr HTTP/1.1" 200 5 "-" "ua"',
        '192.0.2.9 - - [28/Nov/2022:14:02:00 -0500] "GET / HTTP/1.1" 200 5 "-" "ua"\r',
        '192.0.2.9 - - [28/Nov/2022:14:02:00 -0500] "GET / HTTP/1.1" 200 5 "-" "u""a"',
        '192.0.2.9 - - [28/Nov/2022:14:02:00 -0500] "GET / HTTP/1.1" 200 -5 "-" "ua"',
        '192.0.2.9 - - [28/Nov/0000:14:02:00 -0500] "GET / HTTP/1.1" 200 5 "-" "ua"',
        '192.0.2.9 - - [28/Nov/2022:14:02:00 -0500] "GET / HTTP/1.1" 200 5 "-" "ua" extra',
        "",
        "   ",
        '192.0.2.9 - - [28/Nov/2022:14:02:00 -0500] "GET / HTTP/1.1" 200 5 "-" "\x00ua"',
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(st.one_of(log_lines(), hostile), min_size=1, max_size=12),
    name=st.sampled_from(["combined", "common", "nginx_main", "nginx_combined", "vhost_combined"]),
)
@example(
    lines=[
        '192.0.2.9 - - [28/Nov/2022:14:02:00 -0500] "GET /\rcr HTTP/1.1" 200 5 "-" "ua"',
        '192.0.2.9 - - [28/Nov/2022:14:02:00 -0500] "GET / HTTP/1.1" 200 5 "-" "ua"',
    ],
    name="combined",
)
@example(
    lines=[
        '192.0.2.9 - - [28/Nov/2022:14:02:00 -0500] "GET /a\\"b HTTP/1.1" 200 5 "-" "ua"',
        '192.0.2.9 - - [28/Nov/2022:14:02:00 -0500] "GET / HTTP/1.1" 200 5 "-" "ua"',
    ],
    name="combined",
)
@example(
    # One line's quoted referer written bare, another's bare status quoted: the chunk holds as
    # many quotes as the layout expects, yet each line must get the exact path's answer.
    lines=[
        '192.0.2.9 - - [28/Nov/2022:14:02:00 -0500] "GET / HTTP/1.1" 200 5 - "ua"',
        '192.0.2.9 - - [28/Nov/2022:14:02:00 -0500] "GET / HTTP/1.1" "200" 5 "-" "ua"',
    ],
    name="combined",
)
@example(
    # Both in one line.
    lines=['192.0.2.9 - - [28/Nov/2022:14:02:00 -0500] "GET / HTTP/1.1" "200" 5 - "ua"'],
    name="combined",
)
def test_every_line_reads_the_same_whatever_its_neighbours(lines, name):
    """A line gives the same row (or reject) in a mixed chunk on the fast path as alone on the
    exact path: neighbours (an escaped quote, a raw CR elsewhere) change nothing."""
    reader = make_reader(get_format(name), "UTC")
    chunk = ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
    mixed = _rows_by_line(reader.read_chunk(1, chunk))
    reader.fast_enabled = False
    alone = {}
    for i, line in enumerate(lines, 1):
        alone.update(_rows_by_line(reader.read_chunk(i, (line + "\n").encode("utf-8", "surrogateescape"))))
    assert mixed == alone


def test_a_quoted_field_written_bare_is_read_exactly():
    """The CSV reading cannot see quotes: a line whose quoted field is bare (or bare field
    quoted) gets the exact path's answer, not a row the layout does not describe."""
    good = '192.0.2.9 - - [28/Nov/2022:14:02:00 -0500] "GET / HTTP/1.1" 200 5 "-" "ua" "1.2.3.4"'
    bad = '192.0.2.9 - - [28/Nov/2022:14:02:00 -0500] "GET / HTTP/1.1" 200 5 "-" "ua" extra'
    reader = make_reader(get_format("nginx_main"), "UTC")
    res = reader.read_chunk(1, f"{good}\n{bad}\n{good}\n".encode())
    assert res.requests.get_column("line_no").to_list() == [1, 3]
    assert res.rejects.get_column("line_no").to_list() == [2]


# -- W3C: the fast path (native line reading, split on the delimiter) equals the exact path --------
W3C_FORMATS = sorted(n for n in FORMATS if get_format(n).family == "w3c")
W3C_NAMES = ["date", "time", "c-ip", "cs-method", "cs-uri-stem", "sc-status", "sc-bytes", "cs(User-Agent)",
             "x-forwarded-for", "_line", "ts", "extra", "date-local", "time-local"]
# Values the exact path reads differently from a plain split: quotes, doubled or leading spaces,
# ", " lists, tabs in a space-separated format, every kind of whitespace Python strips.
w3c_value = st.one_of(
    st.sampled_from(["-", "", "a b", '"a b"', '"a ""q"" b"', "1.2.3.4, 5.6.7.8", "\t", "  ", " x", "x ", "\r",
                     "\x1c", "\u3000", "\x85", "\ufeff", "#", "%20", "\\x20", "2019-12-04", "21:02:31", "200"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=8),
)


@st.composite
def w3c_lines(draw, name: str) -> list[str]:
    fmt = get_format(name)
    fields = (fmt.default_fields or "").split()
    sample = fmt.samples[0].line
    sep = fmt.delimiter
    out: list[str] = []
    for _ in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["sample", "sample", "sample", "mutated", "fields", "directive", "blank", "junk"]))
        if kind == "sample":
            out.append(sample)
        elif kind == "mutated":
            values = sample.split(sep) if sep in sample else sample.split()
            for _ in range(draw(st.integers(1, 3))):
                how = draw(st.sampled_from(["set", "drop", "add", "join", "trailing"]))
                if how == "set" and values:
                    values[draw(st.integers(0, len(values) - 1))] = draw(w3c_value)
                elif how == "drop" and values:
                    values.pop(draw(st.integers(0, len(values) - 1)))
                elif how == "add":
                    values.append(draw(w3c_value))
                elif how == "trailing":
                    values.append("")
            out.append(draw(st.sampled_from([sep, " ", "\t", "  "])).join(values) + draw(st.sampled_from(["", "", "\r", "\t", " "])))
        elif kind == "fields":
            names = draw(st.one_of(st.just(fields), st.lists(st.sampled_from(W3C_NAMES), max_size=6)))
            out.append("#Fields: " + " ".join(names))
        elif kind == "directive":
            out.append(draw(st.sampled_from(["#Version: 1.0", "#Date: 2019-12-05 00:00:00", "#GMT-Offset: -08:00",
                                             "#GMT-Offset: +05:30", "#Software: x", "#", "#Date: junk"])))
        elif kind == "blank":
            out.append(draw(st.sampled_from(["", " ", "\t", "\r", "\x1c\u3000", "\x85 ", "\u200b"])))
        else:
            out.append(draw(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=30)))
    return out


def _w3c_read(name: str, chunks: list[bytes], fast: bool):
    reader = make_reader(get_format(name), "UTC")
    reader.fast_enabled = fast
    results, start = [], 1
    for chunk in chunks:
        results.append(reader.read_chunk(start, chunk))
        start += chunk.count(b"\n")
    rows = [r for res in results for r in res.requests.to_dicts()]
    rejects = sorted((r["line_no"], r["reason"], r["line"]) for res in results for r in res.rejects.to_dicts())
    skipped = sum((res.skipped for res in results), Counter())
    return rows, rejects, skipped, reader.notes


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(W3C_FORMATS), cut=st.integers(0, 14))
@example(data=None, name="cloudfront", cut=0)
def test_w3c_fast_path_equals_exact_path(data, name, cut):
    """Every W3C format: the rows (in order), rejects, skipped counts and notes of the fast path
    are those of the exact path, for files with and without headers, with directives changing
    the fields in mid-chunk, hostile values and lines cut into chunks anywhere."""
    if data is None:
        lines = ["#Version: 1.0", "#Fields: " + (get_format(name).default_fields or ""), get_format(name).samples[0].line,
                 "", "\x1c", get_format(name).samples[0].line + "\t"]
    else:
        lines = data.draw(w3c_lines(name))
    text = ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
    cut = min(cut, len(lines))
    at = sum(len(x.encode("utf-8", "surrogateescape")) + 1 for x in lines[:cut])
    chunks = [c for c in (text[:at], text[at:]) if c]
    fast = _w3c_read(name, chunks, fast=True)
    exact = _w3c_read(name, chunks, fast=False)
    assert fast == exact


def test_py_whitespace_class_is_what_str_strip_strips():
    """The fast path finds blank lines with a regex class; it must be exactly Python's
    whitespace (the exact path's `not line.strip()`)."""
    import re
    import sys

    from forensics.readers.w3c import PY_WHITESPACE

    cls = re.compile(f"[{PY_WHITESPACE}]")
    assert [c for c in range(sys.maxunicode + 1) if chr(c).isspace()] == [
        c for c in range(sys.maxunicode + 1) if cls.match(chr(c))
    ]


def test_a_few_damaged_lines_leave_the_rest_of_their_chunk_on_the_fast_path():
    """An escaped quote (Apache writes `\\"` for a quote a client sent), a doubled quote, a quote
    left open, a CR inside a line and a blank line are read exactly, each alone: the other
    lines of their chunk stay on the fast path, and every row is the exact path's."""
    good = '192.0.2.9 - - [28/Nov/2022:14:02:{:02d} -0500] "GET /f/{} HTTP/1.1" 200 5 "-" "ua"'
    lines = [good.format(i % 60, i) for i in range(400)]
    lines[10] = '192.0.2.9 - - [28/Nov/2022:14:02:00 -0500] "GET / HTTP/1.1" 200 5 "-" "say \\"hi\\""'
    lines[50] = '192.0.2.9 - - [28/Nov/2022:14:02:00 -0500] "GET / HTTP/1.1" 200 5 "-" "u""a"'
    lines[90] = '192.0.2.9 - - [28/Nov/2022:14:02:00 -0500] "GET / HTTP/1.1" 200 5 "-" "open'
    lines[130] = '192.0.2.9 - - [28/Nov/2022:14:02:00 -0500] "GET /\rcr HTTP/1.1" 200 5 "-" "ua"'
    lines[170] = ""
    chunk = ("\n".join(lines) + "\n").encode()
    reader = make_reader(get_format("combined"), "UTC")
    fast = reader.read_chunk(1, chunk)
    assert reader.exact_lines == 5
    reader.fast_enabled = False
    exact = reader.read_chunk(1, chunk)
    assert fast.requests.to_dicts() == exact.requests.to_dicts()
    assert fast.rejects.to_dicts() == exact.rejects.to_dicts()
    assert fast.skipped == exact.skipped == Counter({"blank": 1})


def test_clean_chunks_are_proven_by_positions_alone():
    """A chunk of lines as servers write them (each format's samples that the fast path reads
    alone, without a tail after the layout) is proven from the positions of its line ends and
    quotes alone, and gives the exact path's rows; a line with a quoted field written bare and a
    bare one quoted (the chunk's count of quotes and its length unchanged) is caught."""
    proven = []
    for name in TEXT_FORMATS:
        fmt = get_format(name)
        plain = []
        for sample in fmt.samples:
            alone = make_reader(fmt, "UTC")
            res = alone.read_chunk(1, (sample.line + "\n").encode())
            if alone.exact_lines == 0 and res.requests.height == 1 and "trailing" not in (res.requests["extra"][0] or ""):
                plain.append(sample.line)
        if not plain:
            continue
        lines = plain * 3
        reader = make_reader(fmt, "UTC")
        assert isinstance(reader, TextReader)
        chunk = ("\n".join(lines) + "\n").encode()
        fast = reader.read_chunk(1, chunk)
        assert reader.position_proven_lines == len(lines), name
        proven.append(name)
        reader.fast_enabled = False
        exact = reader.read_chunk(1, chunk)
        assert fast.requests.to_dicts() == exact.requests.to_dicts(), name
    assert {"combined", "common", "nginx_main", "aws_s3"} <= set(proven)
    line = '192.0.2.1 - - [28/Nov/2022:14:02:00 -0500] "GET / HTTP/1.1" {} 5 {} "ua"'
    reader = make_reader(get_format("combined"), "UTC")
    assert isinstance(reader, TextReader)
    chunk = (line.format(200, '"-"') + "\n" + line.format('"200"', "-") + "\n").encode()
    fast = reader.read_chunk(1, chunk)
    assert reader.position_proven_lines == 0 and reader.exact_lines == 1
    reader.fast_enabled = False
    exact = reader.read_chunk(1, chunk)
    assert fast.requests.to_dicts() == exact.requests.to_dicts()
    assert fast.rejects.to_dicts() == exact.rejects.to_dicts()
    assert fast.rejects.get_column("line_no").to_list() == [2]


@pytest.mark.parametrize(("name", "parser"), [("combined", "read_csv"), ("cloudflare_logpush", "read_ndjson")])
def test_a_panic_inside_polars_sends_the_chunk_to_the_exact_path(monkeypatch, name: str, parser: str) -> None:
    """polars reports some input it will not read by panicking (PanicException, which is not an
    Exception): the chunk's lines are then read exactly, with the same rows, and the run goes on."""
    fmt = get_format(name)
    lines = [s.line for s in fmt.samples] * 2
    chunk = ("\n".join(lines) + "\n").encode()
    exact_reader = make_reader(fmt, "UTC")
    exact_reader.fast_enabled = False
    exact = exact_reader.read_chunk(1, chunk)
    assert exact.requests.height

    def panics(*args: object, **kwargs: object) -> None:
        raise PanicException('should not fail: SchemaMismatch(ErrString("type Float64 is incompatible"))')

    monkeypatch.setattr(pl, parser, panics)
    reader = make_reader(fmt, "UTC")
    got = reader.read_chunk(1, chunk)
    assert reader.exact_lines == len(lines)
    assert got.requests.to_dicts() == exact.requests.to_dicts()
    assert got.rejects.to_dicts() == exact.rejects.to_dicts()

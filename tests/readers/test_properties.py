"""Property tests: a reader never crashes and never loses a line, whatever bytes it is given,
and the fast (CSV) path gives exactly what the exact (regex) path gives."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from forensics.formats import builtin_formats, get_format
from forensics.readers import make_reader

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


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(log_lines(), min_size=1, max_size=12), name=st.sampled_from(["combined", "common", "nginx_main", "nginx_combined"]))
@example(lines=['192.0.2.1 - - [28/Nov/2022:14:02:00 -0500] "" 200 0 "" ""a""'], name="combined")
@example(lines=['192.0.2.1 - - [28/Nov/2022:14:02:00 -0500] "" 200 0 "" """"'], name="combined")
def test_fast_path_equals_exact_path(lines, name):
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

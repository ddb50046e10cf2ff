"""Property tests for the JSON family: the fast (polars) path gives exactly the requests, rejects
and skipped counts of the exact (json.loads) path, for every JSON format, on generated lines that
include hostile ones (invalid UTF-8, huge numbers, NaN, floats, nested objects and arrays,
duplicate keys, nulls, unicode and surrogate escapes, control characters, blank lines, CRLF,
prefixes, records arrays, cut lines), and it really reads the ordinary lines itself."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import polars as pl
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from forensics.formats import builtin_formats, get_format
from forensics.inputs import count_lines
from forensics.normalize import to_canonical
from forensics.readers import ChunkResult, make_reader
from forensics.readers.jsonl import epoch_kind

JSON = sorted(n for n, f in builtin_formats().items() if f.family == "json")
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Raw:
    """A token written as is (numbers in their own spelling, NaN, damaged text)."""

    text: str


@dataclass(frozen=True)
class Obj:
    """An object as its members in order, so that a key can repeat."""

    members: tuple[tuple[str, Any], ...]


def dump(value: Any, spaced: bool, ascii_only: bool) -> str:
    colon, comma = (": ", ", ") if spaced else (":", ",")
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Obj):
        inner = comma.join(
            f"{json.dumps(k, ensure_ascii=ascii_only)}{colon}{dump(v, spaced, ascii_only)}" for k, v in value.members
        )
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + comma.join(dump(v, spaced, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


text_values = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "-", "N/A", "GET", "/files/a.pdf?x=1", "https://e.org/f.zip", "bytes 0-9/100", "1.50",
                     "[x", "{y", "HIT", "miss", "é", "\\x41", "a\u2028b", "\ufeff", "2024-01-02T03:04:05Z",
                     "1712790000100000000", "28/Nov/2022:14:10:00 -0500", "89.160.20.156:9989", "10.0.0.1, 10.0.0.2"]),
)
numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=0, max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([Raw(t) for t in ["-0", "1.0", "1.50", "1e5", "1E400", "-0.0", "0.0001", "1e-5", "1e16",
                                       "1716723772.6014807", "NaN", "Infinity", "-Infinity", "01", "1.", "+1"]]),
)
scalars = st.one_of(text_values, numbers, st.booleans(), st.none())
hostile_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(st.tuples(st.sampled_from(["a", "b", "x-forwarded-for", "User-Agent", "a.b", ""]), inner), max_size=3)
        .map(lambda m: Obj(tuple(m))),
    ),
    max_leaves=6,
)
# What logs mostly hold: strings, integers, booleans, header lists, small objects.
plain_text = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
    st.sampled_from(["", "-", "GET", "/files/a.pdf?x=1", "https://e.org:443/f.zip?v=2", "HIT", "miss",
                     "2024-01-02T03:04:05Z", "1712790000", "89.160.20.156:9989", "bytes 0-9/100", "é"]),
)
plain_scalars = st.one_of(
    plain_text, st.integers(min_value=-(10**20), max_value=10**20), st.booleans(), st.floats(allow_nan=False)
)
plain_values = st.one_of(
    plain_scalars,
    plain_scalars,
    st.lists(plain_text, max_size=3),
    st.lists(st.tuples(st.sampled_from(["a", "b", "x-forwarded-for", "User-Agent"]), plain_scalars), min_size=1,
             max_size=3, unique_by=lambda m: m[0]).map(lambda m: Obj(tuple(m))),
)


def nest(path: str, value: Any) -> tuple[str, Any]:
    head, _, rest = path.partition(".")
    return (head, Obj((nest(rest, value),)) if rest else value)


@st.composite
def records(draw: st.DrawFn, name: str, plain: bool = False) -> Obj:
    """A record of the format: some of its mapped keys (nested where the key is dotted), the
    access key with access and non-access values, and unknown keys; its values are plain (what
    logs mostly hold) or hostile."""
    fmt = get_format(name)
    hostile = not plain and draw(st.integers(0, 3)) == 0
    values: st.SearchStrategy[Any] = hostile_values if hostile else plain_values
    # Mapped keys mostly hold scalars (header lists for Caddy), other keys anything.
    mapped_values: st.SearchStrategy[Any] = hostile_values if hostile else st.one_of(plain_scalars, plain_scalars, st.lists(plain_text, max_size=2))
    members: list[tuple[str, Any]] = []
    paths = sorted(set(fmt.fields) | {alt for spec in (*fmt.identity, *fmt.required) for alt in spec.split("|")})
    chosen = draw(st.lists(st.sampled_from(paths), max_size=len(paths), unique=True))
    if plain or draw(st.integers(0, 3)):
        # The keys a record of the format must have, so that most records are requests.
        chosen += [spec.split("|")[0] for spec in (*fmt.identity, *fmt.required)]
    seen: dict[str, Any] = {}
    for path in chosen:
        head = path.split(".")[0]
        member = nest(path, draw(mapped_values))
        if head in seen and isinstance(seen[head], Obj) and isinstance(member[1], Obj):
            # Keys under one object (request.uri, request.host) join in it.
            seen[head] = Obj(seen[head].members + member[1].members)
        else:
            seen[head] = member[1]
    members += list(seen.items())
    if bool(fmt.access) and draw(st.booleans()):
        access_values = [*fmt.access.get("prefix", []), *fmt.access.get("values", []), "other", "http.log.error"]
        members.append(nest(fmt.access["key"], draw(st.one_of(st.sampled_from(access_values), values))))
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(["extra", "status", "_x", "json", "a.b", "", "é", "records", "ts", "k1", "k2"]))
        members.append((key, draw(values)))
    order = draw(st.permutations(range(len(members)))) if members else []
    out = [members[i] for i in order]
    if out and not plain and draw(st.integers(0, 9)) == 0:
        out.append((out[0][0], draw(values)))  # a duplicate key
    return Obj(tuple(out))


@st.composite
def json_lines(draw: st.DrawFn, name: str) -> bytes:
    kind = draw(st.integers(0, 24))
    if kind == 0:
        return draw(st.sampled_from([b"", b"   ", b"\t", b"{", b"[]", b"{}", b"null", b"[1, 2]", b"\xef\xbb\xbf{}",
                                     b"not json", b'{"a":1} x', b'{"a":1}{"b":2}', b"\x00\x00{}"]))
    if kind == 1:
        return draw(st.binary(max_size=40)).replace(b"\n", b" ")
    record = draw(records(name))
    if kind == 2:
        record = Obj((("records", [record, draw(records(name))]),))
    line = dump(record, spaced=draw(st.booleans()), ascii_only=draw(st.booleans()))
    data = line.encode("utf-8", "surrogatepass")
    if kind == 3:
        data = data[: draw(st.integers(0, len(data)))]
    elif kind == 4:
        data = b"caddy  | " + data
    elif kind == 5:
        data += b"\r"
    elif kind == 6:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\t", b"\x01", b"\r", b" "])) + data[at:]
    return data.replace(b"\n", b"\\n")


def compare(fast: ChunkResult, exact: ChunkResult) -> None:
    """Identical rows (extra as the same object: its key order follows the chunk's first
    appearances, on either path), identical rejects and skipped counts."""

    def rows(res: ChunkResult) -> list[dict[str, Any]]:
        return [
            {**r, "extra": json.loads(r["extra"]) if r["extra"] is not None else None} for r in res.requests.to_dicts()
        ]

    assert rows(fast) == rows(exact)
    assert fast.rejects.sort("line_no", "reason").to_dicts() == exact.rejects.sort("line_no", "reason").to_dicts()
    assert +fast.skipped == +exact.skipped


def read_both(name: str, chunks: list[bytes]) -> tuple[list[ChunkResult], list[ChunkResult], int]:
    fast_reader = make_reader(get_format(name), "UTC")
    exact_reader = make_reader(get_format(name), "UTC")
    exact_reader.fast_enabled = False
    fast, exact, start = [], [], 1
    for chunk in chunks:
        fast.append(fast_reader.read_chunk(start, chunk, count_lines(chunk)))  # counted as reading counts
        exact.append(exact_reader.read_chunk(start, chunk))
        start += chunk.count(b"\n")
    fast.append(fast_reader.finish())
    exact.append(exact_reader.finish())
    return fast, exact, fast_reader.exact_lines


def both_paths_agree(name: str, chunks: list[bytes]) -> None:
    fast, exact, _ = read_both(name, chunks)
    for f, e in zip(fast, exact, strict=True):
        compare(f, e)


@st.composite
def format_and_lines(draw: st.DrawFn) -> tuple[str, list[bytes]]:
    name = draw(st.sampled_from(JSON))
    return name, draw(st.lists(json_lines(name), min_size=1, max_size=12))


@st.composite
def mostly_plain_lines(draw: st.DrawFn) -> tuple[str, list[bytes]]:
    """Requests of the format as servers write them, with a few hostile lines among them."""
    name = draw(st.sampled_from(JSON))
    plain = st.builds(
        lambda rec, spaced: dump(rec, spaced, ascii_only=False).encode(), records(name, plain=True), st.booleans()
    )
    return name, draw(st.lists(st.one_of(plain, plain, plain, json_lines(name)), min_size=1, max_size=12))


@SETTINGS
@given(case=format_and_lines())
@example(case=("cloudflare_logpush", [b'{"ClientIP":"192.0.2.1","EdgeStartTimestamp":1,"ClientRequestURI":"/a","x":1,"x":null}']))
@example(case=("cloudflare_logpush", [b'{"ClientIP":"192.0.2.1","EdgeStartTimestamp":1,"ClientRequestURI":"/a","k":1.0}']))
@example(case=("cloudflare_logpush", [  # an object under the key "": its members are ".a", not "a"
    b'{"ClientIP":"","EdgeStartTimestamp":0,"ClientRequestURI":"","":{"a":0},"b":1}',
]))
@example(case=("cloudflare_logpush", [b'{"ClientIP":"192.0.2.1","EdgeStartTimestamp":1,"ClientRequestURI":"/a","k":[1e20]}']))
@example(case=("cloudflare_logpush", [  # floats as Python's repr writes them, and the ones it writes with an exponent
    b'{"ClientIP":"192.0.2.1","EdgeStartTimestamp":1,"ClientRequestURI":"/a","k":' + t + b'}'
    for t in [b"1e-05", b"0.00001", b"0.0001", b"1e16", b"9999999999999998.0", b"12345678901234567.5", b"-0.0",
              b"0.30000000000000004", b"1E2", b"2.50", b"1.00000000000000001"]
]))
@example(case=("caddy", [b'{"level":"info","ts":1716723772.6014807,"logger":"http.log.access","msg":"m",'
                         b'"request":{"uri":"/a","duration":0.5},"duration":0.017557019,"status":200}']))
@example(case=("caddy", [b'{"ts":1,"level":"info","msg":"m","logger":"http.log.access","request":{"uri":"/a","headers":{}}}']))
@example(case=("caddy", [b'{"ts":1,"level":"info","msg":"m","logger":"tls","request":{"uri":"/a"}}']))
@example(case=("gcp_lb", [b'{"timestamp":"2024-01-02T03:04:05Z","insertId":"i","httpRequest":{"requestUrl":"https://e/a","requestUrl":{"x":"1"}}}']))
@example(case=("caddy", [  # a float under a key whose text ends in another key's name ("ts" in a\"ts)
    b'{"level":"info","ts":1,"logger":"http.log.access","msg":"m","request":{"uri":"/a"},"a\\"ts":2.5}',
    b'{"level":"info","ts":1,"logger":"http.log.access","msg":"m","request":{"uri":"/a"},"a\\"ts":1.0}',
]))
@example(case=("cloudflare_logpush", [  # keys named as the fast path's own columns
    b'{"ClientIP":"192.0.2.1","EdgeStartTimestamp":1,"ClientRequestURI":"/a","_n":"v","_i":"w","_f":"x",'
    b'"_arr":"y","_line":"z","_fl0":"q","_what":"r","key:ClientIP":"k"}',
]))
@example(case=("caddy", [  # a float under a key seen with integers only, some lines with arrays
    *[b'{"level":"info","ts":1,"logger":"http.log.access","msg":"m","request":{"uri":"/a"},"size":5}'] * 3,
    b'{"level":"info","ts":1,"logger":"http.log.access","msg":"m","request":{"uri":"/a","h":["x"]},"size":5.0}',
    b'{"level":"info","ts":1.5,"logger":"http.log.access","msg":"m","request":{"uri":"/a"},"size":7.0, "k" :1}',
]))
def test_fast_path_equals_exact_path(case: tuple[str, list[bytes]]) -> None:
    name, lines = case
    both_paths_agree(name, [b"\n".join(lines) + b"\n"])


@SETTINGS
@given(case=mostly_plain_lines())
@example(case=("fastly_json", [b'{"client_ip":"","url":"","":0}']))  # a key named ""
@example(case=("caddy", [b'{"level":"info","ts":1,"logger":"http.log.access","msg":"m","request":{"uri":"/a",'
                         b'"headers":{"User-Agent":["a", "b"],"Accept":[]}},"k":["", "x"],"j":["\\u00e9", 1]}']))
@example(case=("cloudflare_logpush", [b'{"ClientIP":"a","EdgeStartTimestamp":1,"ClientRequestURI":"/","n":5}',
                                      b'{"ClientIP":"a","EdgeStartTimestamp":1,"ClientRequestURI":"/","n":"5"}']))
@example(case=("cloudflare_logpush", [  # a key of string shape holding an array, a string "[..." in a list key
    b'{"ClientIP":"a","EdgeStartTimestamp":1,"ClientRequestURI":"/","k":"x","h":["a"]}',
    b'{"ClientIP":"a","EdgeStartTimestamp":1,"ClientRequestURI":"/","k":["y", "z"],"h":"[b"}',
    b'{"ClientIP":"a","EdgeStartTimestamp":1,"ClientRequestURI":"/","k":"[y]","h":[],"j":"a:[b"}',
    b'{"ClientIP":"a","EdgeStartTimestamp":1,"ClientRequestURI":"/","h":"[\\"a\\"]"}',
    b'{"ClientIP":"a","EdgeStartTimestamp":1,"ClientRequestURI":"/","h":"[\\"a\\"]","k":["y"]}',
]))
def test_fast_path_equals_exact_path_on_mostly_plain_lines(case: tuple[str, list[bytes]]) -> None:
    name, lines = case
    both_paths_agree(name, [b"\n".join(lines) + b"\n"])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(JSON), data=st.data())
def test_fast_path_equals_exact_path_over_several_chunks(name: str, data: st.DataObject) -> None:
    """The fast path learns a file's keys as it goes: later chunks with other keys, or the same
    keys in other shapes, still read the same."""
    chunks = [
        b"\n".join(data.draw(st.lists(json_lines(name), min_size=1, max_size=8))) + b"\n" for _ in range(3)
    ]
    both_paths_agree(name, chunks)


@SETTINGS
@given(case=format_and_lines())
def test_every_line_is_a_row_a_reject_or_skipped_once(case: tuple[str, list[bytes]]) -> None:
    name, lines = case
    results, _, _ = read_both(name, [b"\n".join(lines) + b"\n"])
    if get_format(name).records_key or any(b'"records"' in ln or ln.lstrip().startswith(b"[") for ln in lines):
        return  # a records line gives a row per record
    seen = [n for res in results for n in res.requests.get_column("line_no").to_list()]
    seen += [n for res in results for n in res.rejects.get_column("line_no").to_list()]
    assert len(seen) == len(set(seen))
    assert len(seen) + sum(sum(res.skipped.values()) for res in results) == len(lines)


def test_ordinary_lines_take_the_fast_path() -> None:
    """Lines as Cloudflare writes them are read by polars, and a line the fast path leaves to the
    exact path (NaN here, which Python reads) keeps its line number among them."""
    base = {"ClientIP": "192.0.2.1", "ClientRequestHost": "e.org", "ClientRequestMethod": "GET",
            "EdgeStartTimestamp": 1712790000100000000, "EdgeResponseStatus": 200, "EdgeResponseBytes": 10,
            "RayID": "87a1", "RequestHeaders": {"x-forwarded-for": "198.51.100.7"}, "WorkerSubrequest": False,
            "ClientRequestURI": "/a"}
    lines = [json.dumps({**base, "ClientRequestURI": f"/f/{i}"}, separators=(",", ":")) for i in range(50)]
    lines[20] = lines[20].replace('"EdgeResponseBytes":10', '"EdgeResponseBytes":NaN')
    chunk = ("\n".join(lines) + "\n").encode()
    fast, exact, exact_lines = read_both("cloudflare_logpush", [chunk])
    compare(fast[0], exact[0])
    assert exact_lines == 1
    res = fast[0].requests
    assert res.get_column("line_no").to_list() == [n for n in range(1, 51) if n != 21]
    assert fast[0].rejects.select("line_no", "reason").rows() == [(21, "total_bytes is not a number")]
    assert res.filter(pl.col("line_no") == 22).get_column("path").to_list() == ["/f/21"]
    assert res.get_column("path").to_list()[:3] == ["/f/0", "/f/1", "/f/2"]
    assert json.loads(res.get_column("extra")[0]) == {"WorkerSubrequest": "false"}


def test_sample_lines_of_every_json_format_read_the_same_on_both_paths() -> None:
    """Each format's own sample lines (floats and nulls included) give the same rows."""
    for name in JSON:
        fmt = get_format(name)
        lines = [s.line.encode() for s in fmt.samples]
        fast, exact, _ = read_both(name, [b"\n".join(lines) + b"\n"])
        compare(fast[0], exact[0])


epoch_texts = st.one_of(
    st.from_regex(r"\A[0-9]{1,20}(\.[0-9]{0,9})?\Z"),
    st.sampled_from(["", "-", " 1712790000", "1712790000 ", "1e9", "-5", "1712790000100000000", "9999999999999999999",
                     "2024-01-02T03:04:05Z", "28/Nov/2022:14:10:00 -0500", "0", "0.5", "99999999999", "100000000000"]),
)


# Times of one number of integer digits (a job writes one unit), with or without a fraction.
one_width = st.integers(1, 20).flatmap(
    lambda n: st.lists(st.from_regex(rf"\A[0-9]{{{n}}}(\.[0-9]{{0,7}})?\Z"), min_size=1, max_size=6)
)


@settings(max_examples=300, deadline=None)
@given(times=st.one_of(one_width, st.lists(epoch_texts, min_size=1, max_size=8)))
@example(times=["12345678901"])  # the widths where the unit changes
@example(times=["123456789012"])
@example(times=["12345678901234"])
@example(times=["123456789012345"])
@example(times=["12345678901234567"])
@example(times=["123456789012345678"])
@example(times=["9223372036854775807", "9223372036854775808"])
def test_an_epoch_kind_chosen_for_a_chunk_reads_every_time_as_ts_auto(times: list[str]) -> None:
    """The unit kind picked for a chunk whose times are plain numbers gives the same instants,
    and the same rejects, as ts_auto."""
    fmt = get_format("cloudflare_logpush")
    raw = pl.DataFrame(
        {"_line_no": pl.Series(range(1, len(times) + 1), dtype=pl.Int64), "_ts": pl.Series(times, dtype=pl.String)}
    )
    kind = epoch_kind(raw.get_column("_ts"), fmt.null)
    if kind is None:
        return
    auto = to_canonical(raw, {"_ts": "ts_auto"}, fmt, 0, "UTC")
    chosen = to_canonical(raw, {"_ts": kind}, fmt, 0, "UTC")
    assert auto[0].get_column("ts").to_list() == chosen[0].get_column("ts").to_list()
    assert auto[1].to_list() == chosen[1].to_list()


def test_epoch_kinds_are_chosen_for_the_usual_stamps() -> None:
    nulls = get_format("cloudflare_logpush").null
    assert epoch_kind(pl.Series(["1712790000100000000", "-"]), nulls) == "ts_epoch_ns"
    assert epoch_kind(pl.Series(["1716723772.6014807", "1653485126"]), nulls) == "ts_epoch_s"
    assert epoch_kind(pl.Series(["1712790000100"]), nulls) == "ts_epoch_ms"
    assert epoch_kind(pl.Series(["1712790000100000"]), nulls) is None  # microseconds stay with ts_auto
    assert epoch_kind(pl.Series(["1712790000", "2022-10-30T00:00:02Z"]), nulls) is None


def test_lines_polars_refuses_are_found_and_only_they_are_read_exactly() -> None:
    """A chunk with a few lines polars refuses (nginx's unquoted values, a trailing comma, NaN)
    among many it reads: those lines alone go to the exact path, which repairs, rejects or reads
    them, and the rows equal the exact path's."""
    good = ('{"time_local":"28/Nov/2022:14:10:00 -0500","remote_addr":"10.0.0.1","request":"GET /%d HTTP/1.1",'
            '"status": 200,"body_bytes_sent": 5}')
    bad = [good[:-1] + ',"upstream_status": 502, 200}', good[:-1] + ",}", good[:-1] + ',"x":NaN}']
    lines = [bad[i // 100 % 3] if i % 100 == 7 else good for i in range(3000)]
    chunk = ("\n".join(line.replace("%d", str(i)) for i, line in enumerate(lines)) + "\n").encode()
    fast, exact, exact_lines = read_both("nginx_json", [chunk])
    compare(fast[0], exact[0])
    assert exact_lines == 30
    assert fast[0].rejects.height == 10  # the trailing commas


def test_keys_that_held_arrays_and_strings_in_earlier_chunks_read_the_same() -> None:
    """A key learnt with arrays (list shape) later holding a string that reads like one, and a
    key learnt with strings later holding an array, in one line or apart: the same rows."""
    head = b'{"ClientIP":"a","EdgeStartTimestamp":1,"ClientRequestURI":"/",'
    first = head + b'"h":["a"],"k":"x"}\n'
    later = [
        head + b'"h":"[\\"a\\"]"}',
        head + b'"h":"[\\"a\\"]","k":["y", "z"]}',
        head + b'"h":"[]","k":["y"]}',
        head + b'"h":["b"],"k":["y"]}',
        head + b'"h":["c"],"k":"[z]"}',
        head + b'"h":["c", "d"],"k":"w"}',
    ]
    fast, exact, _ = read_both("cloudflare_logpush", [first, b"\n".join(later) + b"\n"])
    for f, e in zip(fast, exact, strict=True):
        compare(f, e)
    assert fast[1].requests.height == len(later)


def test_prefixed_lines_take_the_fast_path() -> None:
    """Lines with the prefix a format allows (a container's name, a syslog header) are read by
    polars too, keep their whole text, and read the same as on the exact path."""
    record = {"level": "info", "ts": 1716723772.6014807, "logger": "http.log.access", "msg": "handled request",
              "request": {"uri": "/a", "remote_ip": "192.0.2.1", "headers": {"User-Agent": ["curl/8"]}},
              "status": 200, "size": 5, "duration": 0.01}
    lines = [("caddy  | " if i % 2 else "") + json.dumps(record, separators=(",", ":")) for i in range(60)]
    lines[5] = "caddy  | not json"
    lines[7] = "caddy  | " + json.dumps({**record, "status": "x"})
    fast, exact, exact_lines = read_both("caddy", [("\n".join(lines) + "\n").encode()])
    compare(fast[0], exact[0])
    assert exact_lines == 1
    assert fast[0].rejects.select("line_no", "line").rows() == [(6, lines[5]), (8, lines[7])]
    syslog = ('<134>2022-11-28T19:12:00Z cache-iad-kiad7000031 agency-web[363624]: {"timestamp":"2022-11-28T19:12:00",'
              '"client_ip":"203.0.113.9","url":"/a","response_status":200}')
    fast, exact, exact_lines = read_both("fastly_json", [(syslog + "\n").encode() * 20])
    compare(fast[0], exact[0])
    assert exact_lines == 0 and fast[0].requests.height == 20


def _rows_by_line(res: ChunkResult) -> dict[int, list[Any]]:
    """Each line's rows (extra as an object) and reject reasons."""
    out: dict[int, list[Any]] = {}
    for r in res.requests.to_dicts():
        out.setdefault(r["line_no"], []).append(
            {**r, "extra": json.loads(r["extra"]) if r["extra"] is not None else None}
        )
    for r in res.rejects.to_dicts():
        out.setdefault(r["line_no"], []).append(("reject", r["reason"]))
    return out


@SETTINGS
@given(case=mostly_plain_lines())
@example(case=("akamai_datastream2", [b"", b'{"reqTimeSec":"","cliIP":"","reqPath":""}', b"{"]))  # blank first
@example(case=("cloudflare_logpush", [  # one record with a cache status, one without
    b'{"ClientIP":"192.0.2.1","EdgeStartTimestamp":1,"ClientRequestURI":"/a","CacheCacheStatus":"hit"}',
    b'{"ClientIP":"192.0.2.1","EdgeStartTimestamp":1,"ClientRequestURI":"/a"}',
]))
@example(case=("nginx_json", [b'{"remote_addr":"","status":"","request":""}'] * 3 + [  # a request as an array
    b'{"remote_addr":"","status":"","@timestamp":"","time":0,"body_bytes_sent":"","request":["","0"],'
    b'"extra":"","extra":"","extra":""}'
]))
def test_every_line_reads_the_same_whatever_its_neighbours(case: tuple[str, list[bytes]]) -> None:
    """A line's rows (or reject) in a chunk of other lines are its rows read after the first
    line alone: what the neighbours hold (members this line lacks, other shapes of a key)
    changes nothing. (The first line that is not blank decides whether the file is JSON lines
    or one document, so each line is read after it; a file read as one document has no rows
    per line.)"""
    name, lines = case
    reader = make_reader(get_format(name), "UTC")
    chunk = b"\n".join(lines) + b"\n"
    got = [reader.read_chunk(1, chunk, count_lines(chunk)), reader.finish()]
    assume(getattr(reader, "mode", None) != "document")
    mixed = {k: v for res in got for k, v in _rows_by_line(res).items()}
    alone: dict[int, list[Any]] = {}
    first = next(
        (i for i, line in enumerate(lines, 1) if line.decode("utf-8", "backslashreplace").strip()), None
    )
    for i, line in enumerate(lines, 1):
        single = make_reader(get_format(name), "UTC")
        if first is not None and first < i:
            single.read_chunk(first, lines[first - 1] + b"\n")
        rows = [single.read_chunk(i, line + b"\n"), single.finish()]
        alone.update({k: v for res in rows for k, v in _rows_by_line(res).items() if k == i})
    assert mixed == alone

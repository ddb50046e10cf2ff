"""Property tests per family: whatever the bytes, a reader turns every line into a row, a reject
with its reason, or a skip, and raises nothing.

Each family is fed its own valid lines, mutated the ways real systems damage them (years 0 and
below, negative byte counts, absurd statuses, CRs, NULs, BOMs, cut lines, lone surrogate escapes,
JSON nested thousands deep, several records on one line, W3C headers naming the reader's own
columns, impossible #GMT-Offsets), plus arbitrary bytes. Files are read the way ingest reads
them (read_chunks, the reader, long-line rejects, finish), and checked: lines read = lines
parsed + lines rejected + lines skipped, at most one row per line (JSON: one per record on it).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from forensics.errors import InputError
from forensics.formats import builtin_formats, get_format
from forensics.inputs import ReadState, count_lines, parquet_records, read_chunks, sniff_compression
from forensics.readers import long_line_rejects, make_reader

FORMATS = builtin_formats()
TEXT = sorted(n for n, f in FORMATS.items() if f.family == "text")
W3C = sorted(n for n, f in FORMATS.items() if f.family == "w3c")
JSON = sorted(n for n, f in FORMATS.items() if f.family == "json")
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def read_like_ingest(path: Path, name: str, max_line_bytes: int = 1 << 20) -> tuple[ReadState, Counter[int], set[int], int]:
    """State, rows per line, rejected lines (without a row) and skipped lines of one file."""
    fmt = get_format(name)
    reader = make_reader(fmt, "UTC", None)
    state = ReadState()
    results = []
    compression = sniff_compression(path)
    if compression == "parquet":
        for start, lines in parquet_records(path, state):
            results.append((reader.read_lines(start, lines), None))
    else:
        for start, chunk, n_lines in read_chunks(path, compression, state, max_line_bytes=max_line_bytes):
            # The count handed on with a chunk is the count of its lines, whatever the bytes.
            assert n_lines == count_lines(chunk)
            results.append((reader.read_chunk(start, chunk, n_lines), None))
            if state.long_lines:
                results.append((None, long_line_rejects(state, max_line_bytes)))
        results.append((reader.finish(), None))
    rows: Counter[int] = Counter()
    rejected: set[int] = set()
    skipped = 0
    for res, extra in results:
        if res is not None:
            rows.update(res.requests.get_column("line_no").to_list())
            rejected.update(res.rejects.get_column("line_no").to_list())
            skipped += sum(res.skipped.values())
            # Rows must convert to Python values (report, detect): no year 0, no broken text.
            res.requests.to_dicts()
        if extra is not None:
            rejected.update(extra.get_column("line_no").to_list())
    return state, rows, rejected - set(rows), skipped


def check_accounting(path: Path, name: str, max_rows_per_line: int | None = 1) -> tuple[Counter[int], set[int], int]:
    state, rows, rejected, skipped = read_like_ingest(path, name)
    assert len(rows) + len(rejected) + skipped == state.lines, (len(rows), len(rejected), skipped, state.lines)
    assert all(1 <= n <= state.lines for n in [*rows, *rejected])
    if max_rows_per_line is not None:
        assert max(rows.values(), default=0) <= max_rows_per_line
    return rows, rejected, skipped


# -- mutations ------------------------------------------------------------------------------------
def mutate_text(draw: st.DrawFn, line: str) -> str:
    how = draw(st.sampled_from(["year", "bytes", "status", "insert", "cut", "prefix", "none"]))
    if how == "year":
        year = draw(st.sampled_from(["0000", "-001", "-2022", "0001", "9999", "99999"]))
        return line.replace("2022", year).replace("2019", year).replace("2018", year).replace("2024", year)
    if how == "bytes":
        return line.replace(" 200 ", " 200 -5 ", 1) if " 200 " in line else line + " -5"
    if how == "status":
        return line.replace(" 200 ", " " + draw(st.sampled_from(["99", "1000", "-200", "000", "2000000"])) + " ", 1)
    if how == "insert":
        pos = draw(st.integers(0, len(line)))
        junk = draw(st.sampled_from(["\r", "\t", "\x00", '"', '\\"', "\\", "\ufeff", "\u2028", "\x1b[31m", "\ud83d"]))
        return line[:pos] + junk + line[pos:]
    if how == "cut":
        return line[: draw(st.integers(0, len(line)))]
    if how == "prefix":
        return draw(st.sampled_from(["\ufeff", "\x00" * 7, "\r"])) + line
    return line


@st.composite
def mutated(draw: st.DrawFn, samples: list[str]) -> str:
    return mutate_text(draw, draw(st.sampled_from(samples)))


def text_file(name: str) -> st.SearchStrategy[list[str]]:
    samples = [s.line for s in FORMATS[name].samples]
    return st.lists(st.one_of(mutated(samples), st.text(max_size=40)), min_size=1, max_size=10)


def write(tmp_path: Path, lines: list[str], raw_tail: bytes = b"", name: str = "a.log") -> Path:
    path = tmp_path / name
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + raw_tail)
    return path


@SETTINGS
@given(data=st.data(), name=st.sampled_from(TEXT), tail=st.sampled_from([b"", b"\n", b"\r\n", b"\x00" * 20]))
def test_text_family_accounts_for_every_line(tmp_path_factory, data, name, tail):
    lines = data.draw(text_file(name))
    check_accounting(write(tmp_path_factory.mktemp("t"), lines, tail), name)


W3C_FIELD_NAMES = ["date", "time", "c-ip", "cs-method", "cs-uri-stem", "sc-status", "sc-bytes", "cs(User-Agent)",
                   "_line", "_line_no", "_ts", "ts", "_parts", "line_no", "extra", "missing_fields", "source_id",
                   "_date", "date"]


@st.composite
def w3c_file(draw: st.DrawFn, name: str) -> list[str]:
    fmt = FORMATS[name]
    fields = (fmt.default_fields or "").split()
    sample = fmt.samples[0].line
    out: list[str] = []
    if draw(st.booleans()):
        out.append("#GMT-Offset: " + draw(st.sampled_from(["+99:00", "-14:00", "+14:00", "-08:00", "+05:30", "junk", "+00:00"])))
    if draw(st.booleans()):
        extra = draw(st.lists(st.sampled_from(W3C_FIELD_NAMES), max_size=3))
        out.append("#Fields: " + " ".join([*fields, *extra]))
        sample = sample + "".join(" x" for _ in extra) if "\t" not in sample else sample + "".join("\tx" for _ in extra)
    elif draw(st.booleans()):
        out.append("#Fields: " + " ".join(draw(st.lists(st.sampled_from(W3C_FIELD_NAMES), max_size=8))))
    for _ in range(draw(st.integers(1, 6))):
        out.append(draw(st.one_of(mutated([sample]), st.text(max_size=30))))
    return out


@SETTINGS
@given(data=st.data(), name=st.sampled_from(W3C), bom=st.booleans())
def test_w3c_family_accounts_for_every_line(tmp_path_factory, data, name, bom):
    lines = data.draw(w3c_file(name))
    if bom:
        lines[0] = "\ufeff" + lines[0]
    check_accounting(write(tmp_path_factory.mktemp("w"), lines), name)


def _deep(n: int) -> str:
    return '{"a":' * n + "1" + "}" * n


def json_samples(name: str) -> list[dict]:
    out = []
    for s in FORMATS[name].samples:
        try:
            value = json.loads(s.line)
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out or [{"msg": "no sample"}]


@st.composite
def json_line(draw: st.DrawFn, name: str) -> tuple[str, int]:
    """A line and how many records it holds."""
    sample = draw(st.sampled_from(json_samples(name)))
    how = draw(st.sampled_from(["plain", "year", "bytes", "surrogate", "deep", "several", "records", "cut", "junk", "bytes_junk"]))
    if how == "year":
        text = json.dumps(sample)
        for y in ("2016", "2018", "2019", "2021", "2022", "2024"):
            text = text.replace(y, draw(st.sampled_from(["0000", "-001", "0001"])))
        return text, 1
    if how == "bytes":
        return json.dumps({k: (-5 if isinstance(v, int) and not isinstance(v, bool) else v) for k, v in sample.items()}), 1
    if how == "surrogate":
        return json.dumps(sample)[:-1] + ', "lone": "\\ud83d", "\\udc00key": 1}', 1
    if how == "deep":
        return _deep(draw(st.sampled_from([50, 900, 5000]))), 1
    if how == "several":
        other = {"level": "info", "msg": "tls handshake", "logger": "tls", "category": "AzureFirewall"}
        items = draw(st.lists(st.sampled_from([sample, other, 5, None]), min_size=0, max_size=4))
        return json.dumps(items), max(1, len(items))
    if how == "records":
        other = {"category": "FrontDoorWebApplicationFirewallLog", "properties": {}}
        items = draw(st.lists(st.sampled_from([sample, other]), min_size=0, max_size=3))
        return json.dumps({"records": items}), max(1, len(items))
    if how == "cut":
        text = json.dumps(sample)
        return text[: draw(st.integers(0, len(text)))], 1
    if how == "junk":
        return draw(st.text(max_size=30)), 1
    if how == "bytes_junk":
        return json.dumps(sample).replace('"', '"\udcff', 1), 1
    return json.dumps(sample), 1


@SETTINGS
@given(data=st.data(), name=st.sampled_from(JSON), bom=st.booleans())
def test_json_family_accounts_for_every_line(tmp_path_factory, data, name, bom):
    drawn = data.draw(st.lists(json_line(name), min_size=1, max_size=6))
    lines = [ln for ln, _ in drawn]
    if bom:
        lines[0] = "\ufeff" + lines[0]
    path = tmp_path_factory.mktemp("j") / "a.json"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape"))
    rows, _, _ = check_accounting(path, name, max_rows_per_line=None)
    # A drawn text may hold line feeds (junk), so it spans several lines; records are on its last.
    holds: dict[int, int] = {}
    at = 1
    for text, n in drawn:
        at += text.count("\n")
        holds[at] = n
        at += 1
    assert all(rows[i] <= holds.get(i, 1) for i in rows)


def test_blank_lines_before_a_records_array_keep_its_rows_on_its_line(tmp_path):
    """Blank lines, then a JSON array of two records: both records are rows of the array's own
    line (the third), the blank lines are skipped."""
    record = json_samples("akamai_datastream2")[0]
    path = tmp_path / "a.json"
    path.write_text("\n\n" + json.dumps([record, record]))
    rows, rejected, skipped = check_accounting(path, "akamai_datastream2", max_rows_per_line=None)
    assert rows == {3: 2} and not rejected and skipped == 2


@SETTINGS
@given(data=st.data())
def test_json_document_over_lines_accounts_for_every_line(tmp_path_factory, data):
    sample = json.loads(FORMATS["azure_frontdoor"].samples[0].line)
    waf = {"category": "FrontDoorWebApplicationFirewallLog", "properties": {}}
    records = data.draw(st.lists(st.sampled_from([sample, waf]), max_size=5))
    text = json.dumps({"records": records}, indent=data.draw(st.sampled_from([None, 1, 2])))
    cut = data.draw(st.integers(0, len(text)))
    text = data.draw(st.sampled_from([text, text[:cut], text[:cut] + _deep(3000) + text[cut:]]))
    path = tmp_path_factory.mktemp("d") / "a.json"
    path.write_text(text)
    check_accounting(path, "azure_frontdoor", max_rows_per_line=None)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {
                "date": st.sampled_from(["2024-11-20", "0000-01-01", "-001-01-01", "junk", None]),
                "time": st.sampled_from(["10:15:02", "25:99:99", None]),
                "c-ip": st.sampled_from(["192.0.2.1", "", "\x1b[2J", None]),
                "cs-method": st.sampled_from(["GET", "", None]),
                "cs-uri-stem": st.text(max_size=20),
                "sc-status": st.sampled_from(["200", "000", "99", "1000", "-1", "x", None]),
                "sc-bytes": st.sampled_from(["1573400", "-5", "9" * 25, "", None]),
            }
        ),
        min_size=1,
        max_size=8,
    )
)
def test_parquet_rows_account_for_every_row(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("p") / "a.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    check_accounting(path, "cloudfront_v2", max_rows_per_line=1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@example(data=b"PAR1", name="combined")
@given(data=st.binary(max_size=600), name=st.sampled_from(["combined", "iis", "cloudfront", "caddy", "azure_frontdoor", "nginx_json"]))
def test_arbitrary_bytes_in_a_file_are_accounted_for(tmp_path_factory, data, name):
    path = tmp_path_factory.mktemp("b") / "a.log"
    path.write_bytes(data)
    if sniff_compression(path) == "parquet":
        # Not a file of lines at all: a clear error naming the file, before anything is read.
        with pytest.raises(InputError, match="not a readable Parquet file") as exc:
            check_accounting(path, name)
        assert str(path) in str(exc.value)
        return
    check_accounting(path, name, max_rows_per_line=None if FORMATS[name].family == "json" else 1)


# -- the regression corpus: lines that once stopped a run ----------------------------------------
REGRESSIONS = Path(__file__).parent / "regressions"
CASES = sorted(p for p in REGRESSIONS.rglob("*") if p.is_file() and p.parent != REGRESSIONS)


def _format_of(path: Path) -> str:
    """Files are named <format>__<what>.<ext>."""
    return path.name.split("__", 1)[0]


def test_the_regression_corpus_is_there():
    assert {p.parent.name for p in CASES} == {"text", "w3c", "json", "parquet"}


def _params():
    return [pytest.param(p, id=f"{p.parent.name}/{p.name}") for p in CASES]


def pytest_generate_tests(metafunc):
    if "regression" in metafunc.fixturenames:
        metafunc.parametrize("regression", _params())


def test_regression_file_is_read_without_error(regression):
    name = _format_of(regression)
    family = FORMATS[name].family
    rows, rejected, skipped = check_accounting(regression, name, max_rows_per_line=None if family == "json" else 1)
    expect = REGRESSIONS / "expected.json"
    wanted = json.loads(expect.read_text()).get(f"{regression.parent.name}/{regression.name}")
    assert wanted, f"add the expected counts of {regression.name} to expected.json"
    if wanted:
        assert (len(rows), len(rejected), skipped) == (wanted["rows"], wanted["rejected"], wanted["skipped"])


def test_rejects_say_why():
    path = REGRESSIONS / "text" / "combined__absurd_numbers.log"
    reader = make_reader(get_format("combined"), "UTC")
    res = reader.read_chunk(1, path.read_bytes())
    reasons = res.rejects.get_column("reason").to_list()
    assert "body_bytes is negative" in reasons
    assert "status is not an HTTP status (100-999, or 000)" in reasons
    assert "timestamp out of range (year before 1 or after 9999)" in reasons
    assert not res.requests.filter(pl.col("body_bytes") < 0).height


def test_json_document_line_over_4_mb_keeps_the_records_after_it(tmp_path):
    fd = json.loads(FORMATS["azure_frontdoor"].samples[0].line)
    big = dict(fd, properties=dict(fd["properties"], userAgent="A" * (4 << 20)))
    doc = '{"records": [\n' + ",\n".join(json.dumps(r) for r in (fd, big, fd, fd)) + "\n]}\n"
    path = tmp_path / "a.json"
    path.write_text(doc)
    # Over the default 1 MiB limit: the big line is a reject, every record after it is read.
    state, rows, rejected, skipped = read_like_ingest(path, "azure_frontdoor")
    assert sorted(rows) == [2, 4, 5] and rejected == {3} and skipped == 2 and state.lines == 6
    # Under a higher limit the big record is read too, in its place.
    state, rows, rejected, skipped = read_like_ingest(path, "azure_frontdoor", max_line_bytes=8 << 20)
    assert sorted(rows) == [2, 3, 4, 5] and not rejected and skipped == 2


def test_the_corpus_ingests_end_to_end(tmp_path, write_case):
    """The real ingest, one source per regression file: the run finishes and every file's lines
    add up (ingest stops on a file whose lines do not)."""
    import shutil

    from forensics.casefile import load_case
    from forensics.ingest import ingest

    sources = []
    for i, path in enumerate(CASES):
        shutil.copy(path, tmp_path / f"{i}_{path.name}")
        sources.append({"path": f"{i}_{path.name}", "format": _format_of(path)})
    report = ingest(load_case(write_case(sources)), tmp_path / "out")
    assert len(report.loaded) == len(CASES)
    for r in report.loaded:
        assert r.lines_read == r.lines_parsed + r.lines_rejected + r.lines_skipped


def test_detect_names_the_file_and_never_fails_inside(tmp_path):
    from typer.testing import CliRunner

    from forensics.cli import app

    for path in CASES:
        result = CliRunner().invoke(app, ["detect", str(path)])
        assert "Internal error" not in result.output, (path, result.output)
        assert path.name in result.output, (path, result.output)

"""downloaders.xlsx as a reviewer opens it: typed cells (dates in the case's zone and in UTC,
booleans, numbers), text exactly as logged with control characters visible, and long lists split
across sheets. The workbook is read back from its XML, as a spreadsheet program would."""

from __future__ import annotations

import io
import re
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forensics import spreadsheet
from forensics.casefile import load_case
from forensics.pipeline import run_case
from forensics.spreadsheet import write_downloaders_xlsx

REPO = Path(__file__).resolve().parent.parent
NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
      "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships"}
EPOCH = datetime(1899, 12, 30)


def _unescape(text: str) -> str:
    """XLSX's own escape for characters XML cannot hold (_x0000_), as a spreadsheet decodes it."""
    return re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), text.replace("_x005F_", "\0ESC")) \
        .replace("\0ESC", "_")


def read_xlsx(path: Path) -> dict[str, list[list[object]]]:
    """Every sheet's rows as Python values: str, float, bool, or datetime for date-formatted numbers."""
    with zipfile.ZipFile(path) as z:
        workbook = ET.fromstring(z.read("xl/workbook.xml"))
        rels = ET.fromstring(z.read("xl/_rels/workbook.xml.rels"))
        targets = {r.get("Id"): r.get("Target") for r in rels}
        styles = ET.fromstring(z.read("xl/styles.xml"))
        codes = {f.get("numFmtId"): f.get("formatCode") for f in styles.iter(f"{{{NS['m']}}}numFmt")}
        xfs = [xf.get("numFmtId") for xf in styles.find("m:cellXfs", NS)]  # type: ignore[union-attr]
        shared = []
        if "xl/sharedStrings.xml" in z.namelist():
            shared = ["".join(t.text or "" for t in si.iter(f"{{{NS['m']}}}t"))
                      for si in ET.fromstring(z.read("xl/sharedStrings.xml"))]
        sheets: dict[str, list[list[object]]] = {}
        for sh in workbook.find("m:sheets", NS):  # type: ignore[union-attr]
            xml = ET.fromstring(z.read("xl/" + targets[sh.get(f"{{{NS['r']}}}id")]))
            rows: list[list[object]] = []
            for row in xml.iter(f"{{{NS['m']}}}row"):
                values: list[object] = []
                for c in row:
                    col = sum((ord(ch) - 64) * 26 ** i for i, ch in enumerate(reversed(re.sub(r"\d", "", c.get("r")))))
                    values += [None] * (col - 1 - len(values))
                    kind, v = c.get("t"), c.find("m:v", NS)
                    assert c.find("m:f", NS) is None, "a formula cell"
                    if kind == "inlineStr":
                        value: object = _unescape("".join(t.text or "" for t in c.iter(f"{{{NS['m']}}}t")))
                    elif kind == "s":
                        value = _unescape(shared[int(v.text)])  # type: ignore[union-attr,arg-type]
                    elif kind == "b":
                        value = v.text == "1"  # type: ignore[union-attr]
                    elif v is None:
                        value = None
                    else:
                        number = float(v.text)  # type: ignore[arg-type]
                        code = codes.get(xfs[int(c.get("s", "0"))], "")
                        value = EPOCH + timedelta(days=number) if "yy" in code else number
                    values.append(value)
                rows.append(values)
            sheets[sh.get("name")] = rows  # type: ignore[index]
    return sheets


def _close(a: object, b: datetime) -> bool:
    return isinstance(a, datetime) and abs(a - b) < timedelta(milliseconds=1)


@pytest.fixture(scope="module")
def demo_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    run_case(load_case(REPO / "sample_logs" / "case.toml"), out)
    return out


def test_demo_workbook_has_typed_cells(demo_case: Path) -> None:
    sheets = read_xlsx(demo_case / "downloaders.xlsx")
    assert list(sheets) == ["downloaders", "about"]
    head, *rows = sheets["downloaders"]
    frame = pl.read_parquet(demo_case / "downloaders.parquet")
    assert len(rows) == frame.height == 35
    assert "first_seen (America/New_York)" in head and "first_seen (UTC)" in head
    assert "last_seen (America/New_York)" in head and "last_seen (UTC)" in head
    local, utc = head.index("first_seen (America/New_York)"), head.index("first_seen (UTC)")
    ny = ZoneInfo("America/New_York")
    for row, expected in zip(rows, frame.iter_rows(named=True), strict=True):
        assert row[head.index("client_ip")] == expected["client_ip"]
        first = expected["first_seen"]
        assert _close(row[utc], first.astimezone(UTC).replace(tzinfo=None))
        assert _close(row[local], first.astimezone(ny).replace(tzinfo=None))
        assert row[head.index("requests")] == expected["requests"]
        for flag in ("tor_exit", "vpn", "hosting", "crawler_verified"):
            assert row[head.index(flag)] == expected[flag]  # a boolean or empty, never "true" text
        assert row[head.index("user_agents")] == " | ".join(expected["user_agents"])
    # Every first request lies in the examined period, read in New York time: 14:02 to 19:05
    # EST with 30 minutes either side (a UTC value in the local column would fall outside it).
    assert all(datetime(2022, 11, 28, 13, 32) <= r[local] <= datetime(2022, 11, 28, 19, 35) for r in rows)  # type: ignore[operator]


def test_text_is_as_logged_without_a_formula_guard(tmp_path: Path) -> None:
    values = ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "123", "0012", "http://example.org/"]
    frame = pl.DataFrame({"client_ip": ["192.0.2.1"] * len(values), "user_agent": values, "requests": [1] * len(values)})
    sheets = read_xlsx(write_downloaders_xlsx(frame, tmp_path / "d.xlsx"))
    rows = sheets["downloaders"][1:]
    assert [r[1] for r in rows] == values  # strings, unchanged: no ' prefix, not numbers, not links
    assert all(r[2] == 1.0 for r in rows)


def test_control_characters_are_visible(tmp_path: Path) -> None:
    frame = pl.DataFrame({"user_agent": ["a\x00b", "\x1b[31mred", "tab\there", "line\nbreak", "\u202eevil", "_x0041_"],
                          "statuses": [["200", "\x07"]] * 6})
    path = write_downloaders_xlsx(frame, tmp_path / "d.xlsx")
    rows = read_xlsx(path)["downloaders"][1:]
    assert [r[0] for r in rows] == ["a\\x00b", "\\x1b[31mred", "tab\\x09here", "line\\x0abreak", "\\u202eevil", "_x0041_"]
    assert rows[0][1] == "200 | \\x07"
    about = " ".join(str(r[0]) for r in read_xlsx(path)["about"])
    assert "\\x00" in about and "control characters" in about


def test_long_lists_continue_on_further_sheets(tmp_path: Path) -> None:
    frame = pl.DataFrame({"client_ip": [f"192.0.2.{i}" for i in range(7)], "requests": list(range(7))})
    sheets = read_xlsx(write_downloaders_xlsx(frame, tmp_path / "d.xlsx", rows_per_sheet=3))
    assert list(sheets) == ["downloaders", "downloaders (2)", "downloaders (3)", "about"]
    assert [len(sheets[n]) for n in ("downloaders", "downloaders (2)", "downloaders (3)")] == [4, 4, 2]
    assert all(sheets[n][0] == ["client_ip", "requests"] for n in ("downloaders", "downloaders (2)", "downloaders (3)"))
    ips = [r[0] for n in ("downloaders", "downloaders (2)", "downloaders (3)") for r in sheets[n][1:]]
    assert ips == frame.get_column("client_ip").to_list()
    assert "7 rows" in str(sheets["about"][1][0])


def test_a_utc_case_has_one_time_column_and_milliseconds_when_logged(tmp_path: Path) -> None:
    t = datetime(2022, 11, 28, 19, 5, 1, 250_000, tzinfo=UTC)
    frame = pl.DataFrame({"first_seen": [t, None]}, schema={"first_seen": pl.Datetime("us", "UTC")})
    sheets = read_xlsx(write_downloaders_xlsx(frame, tmp_path / "d.xlsx"))
    head, *rows = sheets["downloaders"]
    assert head == ["first_seen (UTC)"]
    assert _close(rows[0][0], t.replace(tzinfo=None)) and rows[1] == [None]
    with zipfile.ZipFile(tmp_path / "d.xlsx") as z:
        assert "hh:mm:ss.000" in z.read("xl/styles.xml").decode()


def test_frozen_heading_and_widths(demo_case: Path) -> None:
    with zipfile.ZipFile(demo_case / "downloaders.xlsx") as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    assert '<pane ySplit="1"' in sheet and 'state="frozen"' in sheet
    assert "<cols>" in sheet and 'customWidth="1"' in sheet and "<autoFilter" in sheet


# --- the rows as XlsxWriter writes them cell by cell ------------------------------------------------


def _reference_workbook(frame: pl.DataFrame, path: Path, timezone: str, rows_per_sheet: int) -> None:
    """The workbook written the plain way, one XlsxWriter call per cell: the rows the generated
    sheets must equal byte for byte."""
    import math

    import xlsxwriter

    from forensics import spreadsheet as s

    zone_of = {"UTC": UTC} | ({timezone: ZoneInfo(timezone)} if timezone != "UTC" else {})
    columns = s._columns(frame.schema, timezone)
    widths = s._widths(frame.lazy(), columns)
    with_ms = {name: bool(frame.get_column(name).dt.microsecond().fill_null(0).max() or 0)
               for name, dtype in frame.schema.items() if isinstance(dtype, pl.Datetime)}
    workbook = xlsxwriter.Workbook(str(path), {"strings_to_formulas": False, "strings_to_urls": False,
                                               "strings_to_numbers": False, "constant_memory": True})
    header = workbook.add_format({"bold": True, "bottom": 1, "text_wrap": True, "valign": "top"})
    cell = workbook.add_format({"valign": "top"})
    date = workbook.add_format({"valign": "top", "num_format": s.DATE_FORMAT})
    date_ms = workbook.add_format({"valign": "top", "num_format": s.DATE_FORMAT_MS})
    sheets = []
    for part in range(max(1, math.ceil(frame.height / rows_per_sheet))):
        name = "downloaders" if part == 0 else f"downloaders ({part + 1})"
        rows = frame.slice(part * rows_per_sheet, rows_per_sheet)
        ws = workbook.add_worksheet(name)
        sheets.append((name, rows.height))
        for col, width in enumerate(widths):
            ws.set_column(col, col, width)
        ws.freeze_panes(1, 0)
        if columns:
            ws.autofilter(0, 0, max(rows.height, 1), len(columns) - 1)
        for col, (_, heading, _) in enumerate(columns):
            ws.write_string(0, col, heading, header)
        for row_no, row in enumerate(rows.iter_rows(named=True), start=1):
            for col, (source, _, zone) in enumerate(columns):
                value = row[source]
                if value is None:
                    ws.write_blank(row_no, col, None, cell)
                elif zone is not None:
                    local = value.astimezone(zone_of[zone]).replace(tzinfo=None)
                    ws.write_datetime(row_no, col, local, date_ms if with_ms[source] else date)
                elif isinstance(value, bool):
                    ws.write_boolean(row_no, col, value, cell)
                elif isinstance(value, (int, float)) and math.isfinite(value):
                    ws.write_number(row_no, col, value, cell)
                else:
                    ws.write_string(row_no, col, s._text(value), cell)
    s._about(workbook, sheets, timezone, [h for _, h, z in columns if z is not None])
    workbook.close()


def _parts(path: Path) -> dict[str, bytes]:
    """Every part of a workbook but its creation time."""
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i) for i in z.infolist() if i.filename != "docProps/core.xml"}


def _assert_same_as_cell_by_cell(frame: pl.DataFrame, tmp_path: Path, timezone: str, rows_per_sheet: int) -> None:
    """Text cells made per row and per distinct value (each way for every text column) both give
    XlsxWriter's bytes."""
    _reference_workbook(frame, tmp_path / "plain.xlsx", timezone, rows_per_sheet)
    plain = _parts(tmp_path / "plain.xlsx")
    for share in (0.0, 1.0):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(spreadsheet, "DISTINCT_SHARE", share)
            write_downloaders_xlsx(frame, tmp_path / "fast.xlsx", timezone=timezone, rows_per_sheet=rows_per_sheet)
        fast = _parts(tmp_path / "fast.xlsx")
        assert list(fast) == list(plain)
        for name in plain:
            assert fast[name].decode() == plain[name].decode(), (name, share)


AWKWARD_TEXT = [
    "a\x00b", "\x1b[31mred", " lead", "trail ", "a&b<c>\"d'", "_x0041_", "_X00fF_", "\u3000x", "x\xa0", "\ufffe",
    "\u202eevil", "line\nbreak", "é" * 17_000, "\U0001f600" * 9_000, "", "plain",
]


def test_generated_rows_equal_xlsxwriter_cell_by_cell(tmp_path: Path) -> None:
    from decimal import Decimal

    t = datetime(2022, 11, 28, 19, 5, 1, 250_000, tzinfo=UTC)
    n = len(AWKWARD_TEXT)
    frame = pl.DataFrame({
        "text": AWKWARD_TEXT,
        "count": [2**53, 2**53 + 1, -(2**60), 0, None, *range(n - 5)],
        "share": [float("nan"), float("inf"), -float("inf"), 0.1 + 0.2, 1e20, 1e-7, None, 100.0, -0.0, 1 / 3,
                  *[2.5] * (n - 10)],
        "flag": [True, False, None, True] * (n // 4),
        "statuses": [[200, None], [], None, [206]] * (n // 4),
        "agents": [["a", None, "\x07"], [], None, [" x & y"]] * (n // 4),
        "referers": pl.Series([[None], [], None, [None, None]] * (n // 4), dtype=pl.List(pl.Null)),
        "first_seen": [t, None, t + timedelta(microseconds=1), datetime(1900, 1, 1, tzinfo=UTC),
                       datetime(1900, 2, 28, 12, tzinfo=UTC), datetime(1900, 3, 1, 0, 0, 1, tzinfo=UTC),
                       datetime(2038, 1, 19, 3, 14, 8, 999_999, tzinfo=UTC), *[t] * (n - 7)],
        "last_seen": [t.replace(microsecond=0)] * n,
        "day": [datetime(2022, 1, 1).date()] * (n - 1) + [None],
        "amount": pl.Series([Decimal("1.5")] * n),
        "asn": [None] * n,
        "small": pl.Series([1] * n, dtype=pl.UInt8),
        "ratio": pl.Series([0.1] * n, dtype=pl.Float32),
        "verified": [[True], None] * (n // 2),
    })
    for timezone in ("UTC", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"):
        _assert_same_as_cell_by_cell(frame, tmp_path, timezone, 1_048_575)
        _assert_same_as_cell_by_cell(frame, tmp_path, timezone, 5)
    for rows in (0, 1, 2):
        _assert_same_as_cell_by_cell(frame.head(rows), tmp_path, "UTC", 1)
    _assert_same_as_cell_by_cell(pl.DataFrame(), tmp_path, "UTC", 3)
    _assert_same_as_cell_by_cell(frame.select("asn"), tmp_path, "UTC", 3)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(st.one_of(st.none(), st.text(max_size=12)), min_size=0, max_size=12),
    numbers=st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), min_size=12, max_size=12),
    shares=st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)), min_size=12, max_size=12),
    times=st.lists(st.one_of(st.none(), st.datetimes(min_value=datetime(1899, 12, 1), max_value=datetime(2200, 1, 1),
                                                     timezones=st.just(UTC))), min_size=12, max_size=12),
    rows_per_sheet=st.integers(1, 13),
)
def test_generated_rows_equal_xlsxwriter_for_any_values(
    tmp_path: Path, texts: list[str | None], numbers: list[int | None], shares: list[float | None],
    times: list[datetime | None], rows_per_sheet: int,
) -> None:
    n = len(texts)
    # Polars strings are UTF-8: a lone surrogate cannot reach the writer.
    texts = [None if t is None else t.encode("utf-8", "replace").decode("utf-8", "replace") for t in texts]
    frame = pl.DataFrame({
        "text": pl.Series(texts, dtype=pl.String),
        "count": pl.Series(numbers[:n], dtype=pl.Int64),
        "share": pl.Series(shares[:n], dtype=pl.Float64),
        "seen": pl.Series(times[:n], dtype=pl.Datetime("us", "UTC")),
        "agents": pl.Series([[t, t] for t in texts], dtype=pl.List(pl.String)),
    })
    _assert_same_as_cell_by_cell(frame, tmp_path, "America/New_York", rows_per_sheet)


def test_a_list_read_from_parquet_a_few_rows_at_a_time_gives_the_same_workbook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks smaller than a sheet and sheets cut inside a block: each style still first used where
    the cell-by-cell writer first uses it (a time column empty in the first rows)."""
    from forensics import spreadsheet

    t = datetime(2022, 11, 28, 19, 5, 1, tzinfo=UTC)
    n = 23
    frame = pl.DataFrame({
        "client_ip": [f"192.0.2.{i}" for i in range(n)],
        "first_seen": [None] * 4 + [t + timedelta(seconds=i) for i in range(n - 5)] + [None],
        "last_seen": [t + timedelta(milliseconds=i) for i in range(n)],
        "requests": [None if i % 7 == 0 else i for i in range(n)],
        "agents": [[f"agent {i}", "x & y"] if i % 5 else None for i in range(n)],
        "flag": [None if i % 3 == 0 else bool(i % 2) for i in range(n)],
    })
    frame.write_parquet(tmp_path / "list.parquet")
    monkeypatch.setattr(spreadsheet, "_BLOCK_ROWS", 3)
    for rows_per_sheet in (4, 5, 23, 100):
        _reference_workbook(frame, tmp_path / "plain.xlsx", "America/New_York", rows_per_sheet)
        write_downloaders_xlsx(pl.scan_parquet(tmp_path / "list.parquet"), tmp_path / "lazy.xlsx",
                               timezone="America/New_York", rows_per_sheet=rows_per_sheet)
        lazy, plain = _parts(tmp_path / "lazy.xlsx"), _parts(tmp_path / "plain.xlsx")
        assert lazy == plain, rows_per_sheet


def test_the_survey_in_queries_equals_the_survey_block_by_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where each style is first used and the bound on a sheet's XML (which decides its ZIP64
    headers) are the same found in a few queries as block by block, on either side of the point
    where the quick bound passes ZIP64's limit; and the bound is never below the XML written."""
    t = datetime(2022, 11, 28, 19, 5, 1, tzinfo=UTC)
    n = 40
    frame = pl.DataFrame({
        "text": [AWKWARD_TEXT[i % len(AWKWARD_TEXT)] if i % 6 else None for i in range(n)],
        "seen": [None if i % 9 == 2 else t + timedelta(milliseconds=i) for i in range(n)],
        "count": [None if i % 4 == 0 else i for i in range(n)],
        "agents": [[f"agent {i}", "x & y", "\x07"] if i % 5 else None for i in range(n)],
        "empty": pl.Series([None] * n, dtype=pl.Null),
    }).lazy()
    columns = spreadsheet._columns(frame.collect_schema(), "America/New_York")
    blocks = spreadsheet._Blocks(frame, columns, {"seen": True})
    monkeypatch.setattr(spreadsheet, "_BLOCK_ROWS", 7)
    full = blocks.survey(0, n)[1]
    limits = sorted({0, 1, full // 3, full // 2, full - 1, full, full + 1, 10 * full})
    for limit in limits:
        monkeypatch.setattr(zipfile, "ZIP64_LIMIT", limit)
        for start, stop in ((0, n), (3, 30), (5, 6), (8, 8)):
            at_once = blocks._survey_at_once(start, stop)
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(spreadsheet._Blocks, "_survey_at_once", lambda self, start, stop: None)
                block_by_block = blocks.survey(start, stop)
            assert at_once == block_by_block, (limit, start, stop)
    with zipfile.ZipFile(_written(frame)) as z:
        assert z.getinfo("xl/worksheets/sheet1.xml").file_size - 2_000 < blocks.survey(0, n)[1]


def _written(frame: pl.LazyFrame) -> io.BytesIO:
    out = io.BytesIO()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "list.xlsx"
        write_downloaders_xlsx(frame, path, timezone="America/New_York")
        out.write(path.read_bytes())
    return out


def test_sheet_rows_are_deflated_by_isal_and_read_back_whole(tmp_path: Path) -> None:
    from forensics.spreadsheet import _deflate_with_isal

    data = "".join(f'<row r="{i}"><c r="A{i}" t="inlineStr"><is><t>value {i % 97}</t></is></c></row>' for i in range(50_000))
    path = tmp_path / "rows.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as out, out.open("sheet.xml", "w") as fh:
        _deflate_with_isal(fh)
        assert type(fh._compressor).__module__.startswith("isal")  # this Python's zipfile: ISA-L deflates
        for start in range(0, len(data), 65_536):
            fh.write(data[start:start + 65_536].encode("utf-8"))
    with zipfile.ZipFile(path) as back:
        assert back.testzip() is None  # CRC checked
        assert back.read("sheet.xml").decode("utf-8") == data


@pytest.mark.parametrize("apart", [True, False])
def test_sheet_pieces_deflated_apart_on_threads_read_back_whole(tmp_path: Path, apart: bool) -> None:
    """Pieces deflated on their own, on threads, then written in order, are one deflate stream with
    the content's CRC-32 (the zip's own check) and sizes, ZIP64 or not; where zipfile's counts are
    not where they are expected, the same content goes through its own write."""
    from forensics.listfiles import made_in_order
    from forensics.spreadsheet import _SegmentedEntry

    rows = [f'<row r="{i}"><c r="A{i}" t="inlineStr"><is><t>value {i % 97} é</t></is></c></row>' for i in range(40_000)]
    pieces = [("".join(rows[start:start + 3_000])).encode("utf-8") for start in range(0, len(rows), 3_000)]
    pieces.insert(1, b"")  # an empty piece changes nothing

    class Hidden:
        """An entry whose counts this code cannot see (another Python's zipfile)."""

        def __init__(self, entry: object) -> None:
            self.write = entry.write  # type: ignore[attr-defined]

    for zip64 in (False, True):
        path = tmp_path / f"rows-{apart}-{zip64}.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as out, \
                out.open("sheet.xml", "w", force_zip64=zip64) as fh:
            entry = _SegmentedEntry(fh if apart else Hidden(fh))
            assert entry.apart is apart
            for piece in made_in_order(entry.piece, pieces):
                entry.write(piece)
            entry.finish()
        with zipfile.ZipFile(path) as back:
            assert back.testzip() is None  # CRC checked
            assert back.read("sheet.xml") == b"".join(pieces)
            info = back.getinfo("sheet.xml")
            assert info.file_size == sum(map(len, pieces)) and info.compress_type == zipfile.ZIP_DEFLATED
            assert info.compress_size < info.file_size / 5

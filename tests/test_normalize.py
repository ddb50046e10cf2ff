"""The `extra` JSON object: the cheap writing (concatenation where no value needs escaping)
gives the bytes polars' JSON encoder gives, for any values."""

from __future__ import annotations

import json

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from forensics.normalize import _ABSOLUTE, _split_addr_port, _split_target, _ts_expr, extra_expr, nulls_to_null

value = st.one_of(
    st.none(),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6),
    st.sampled_from(['"', "\\", "\x00", "\x1f", "\x7f", "é", "\u2028", "-", ""]),
)
name = st.sampled_from(["ident", "cs(Cookie)", 'a"b', "x\\y", "é", "trailing", "w3c.ts", "\x01k"])


def encoder_extra(df: pl.DataFrame, columns: list[str]) -> pl.Expr:
    """The JSON encoder for every value (what extra_expr must equal)."""
    fragments = [
        pl.when(pl.col(c).is_not_null()).then(
            pl.struct(pl.col(c).cast(pl.String)).struct.json_encode().str.slice(1).str.head(-1)
        )
        for c in columns
    ]
    return pl.when(pl.any_horizontal(pl.col(c).is_not_null() for c in columns)).then(
        pl.concat_str([pl.lit("{"), pl.concat_str(fragments, separator=",", ignore_nulls=True), pl.lit("}")])
    )


@settings(max_examples=200, deadline=None)
@given(
    names=st.lists(name, min_size=1, max_size=4, unique=True),
    rows=st.integers(1, 6),
    data=st.data(),
    ints=st.booleans(),
    vouch=st.booleans(),
)
def test_extra_is_what_the_json_encoder_writes(names, rows, data, ints, vouch):
    cols = {n: data.draw(st.lists(value, min_size=rows, max_size=rows)) for n in names}
    df = pl.DataFrame(cols, schema=dict.fromkeys(names, pl.String))
    if ints:
        df = df.with_columns(pl.lit(7, pl.Int64).alias("count"))
        names = [*names, "count"]
    plain_except = None
    if vouch:
        # The caller vouches for the columns without a character JSON escapes (and names some
        # of those in plain_except all the same).
        escaped = {n for n in names if df.get_column(n).cast(pl.String).str.contains(r'[\x00-\x1f"\\]').any()}
        plain_except = frozenset(escaped | set(data.draw(st.lists(st.sampled_from(names)))))
    got = df.with_columns(extra_expr(df, names, lambda: plain_except).alias("e")).get_column("e").to_list()
    want = df.with_columns(encoder_extra(df, names).alias("e")).get_column("e").to_list()
    assert got == want
    for text, row in zip(got, df.iter_rows(named=True), strict=True):
        kept = {k: str(v) for k, v in row.items() if v is not None}
        assert (json.loads(text) if text is not None else {}) == kept


def all_forms_split(df: pl.DataFrame, col: str, kind: str) -> pl.DataFrame:
    """Address and port by every form in order (bracketed, one colon, last colon): what
    _split_addr_port must equal when it runs only the forms that can read something."""
    text = pl.col(col).str.strip_chars(' "')
    forms = [r"^\[([^\]]+)\](?::([0-9]+))?$", r"^([^:\[\]]+):([0-9]+)$"]
    if kind == "addr_lastport":
        forms.append(r"^(.+):([0-9]+)$")
    groups = [text.str.extract_groups(f) for f in forms]
    return df.select(
        pl.coalesce([*(g.struct.field("1") for g in groups), text]).alias(col),
        pl.coalesce([g.struct.field("2") for g in groups]).alias("client_port"),
    )


address = st.one_of(
    st.sampled_from(["192.0.2.1:443", "2001:db8::1:52000", "[2001:db8::1]:443", "[::1]", "::1", "-", "a]b:80",
                     '"10.0.0.1:8080"', " 10.0.0.1:1 ", "host:", ":80", "[x]:y", "1.2.3.4", "[", "a:b:c",
                     "a\nb:80", "\n:1", "\n]:0", "a]b:1", "1.2.3.4:80\n", "1.2.3.4:８０", "1.2.3.4:+80", "1.2.3.4: 80"]),
    st.text(alphabet="0123456789abcdef.:[] \"\n", max_size=12),
)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(address, min_size=1, max_size=6), kind=st.sampled_from(["addr_port", "addr_lastport"]))
def test_address_and_port_read_as_by_every_form(values, kind):
    df = pl.DataFrame({"client_addr": values}, schema={"client_addr": pl.String})
    got, _ = _split_addr_port(df, {"client_addr": kind})
    assert got.select("client_addr", "client_port").to_dicts() == all_forms_split(df, "client_addr", kind).to_dicts()


def every_iso_form(raw: pl.Expr) -> pl.Expr:
    """Every ISO 8601 form on every time, the first that reads it winning: what the ts_iso
    reading must equal when it gives each form only the times it can read."""
    utc = pl.Datetime("us", "UTC")
    return pl.coalesce(
        raw.str.strptime(utc, "%Y-%m-%dT%H:%M:%S%z", strict=False),
        raw.str.strptime(utc, "%Y-%m-%dT%H:%M:%S%.f%z", strict=False),
        raw.str.strptime(utc, "%Y-%m-%dT%H:%M:%S%.fZ", strict=False),
    )


iso_time = st.one_of(
    st.builds(
        "{}T{}{}{}".format,
        st.sampled_from(["2022-11-28", "2024-02-29", "2023-02-29", "0000-01-01", "9999-12-31", "2022-1-2", "22-11-28"]),
        st.sampled_from(["00:00:00", "23:59:60", "24:00:00", "12:30", "1:2:3", "12:30:45"]),
        st.sampled_from(["", ".0", ".123", ".123456", ".1234567", ".123456789", ".", ",5"]),
        st.sampled_from(["Z", "z", "+00:00", "+0000", "-05:00", "+01", "+14:00", "-00Z", "+0000Z", "Z ", " Z", "ZZ", ""]),
    ),
    st.text(alphabet="0123456789-:T.Zz+ ", max_size=30),
)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.one_of(st.none(), iso_time), min_size=1, max_size=8))
def test_iso_times_read_as_by_every_form(values):
    df = pl.DataFrame({"t": values}, schema={"t": pl.String})
    # As microseconds: some times read are outside what Python's datetime holds.
    got = df.select(_ts_expr(pl.col("t"), "ts_iso", None).cast(pl.Int64)).to_series().to_list()
    assert got == df.select(every_iso_form(pl.col("t")).cast(pl.Int64)).to_series().to_list()


def split_by_expression(df: pl.DataFrame, col: str) -> pl.DataFrame:
    """Scheme, host, path and query by the absolute-URL expression on every target that holds
    "://": what _split_target must equal when it splits with string operations."""
    target = pl.col(col)
    groups = target.str.extract_groups(_ABSOLUTE)
    is_abs = groups.struct.field("1").is_not_null()
    whole, rest = target.str.splitn("?", 2), groups.struct.field("3").str.splitn("?", 2)
    return df.select(
        _scheme=groups.struct.field("1").str.to_lowercase(),
        _host=groups.struct.field("2"),
        _path=pl.when(is_abs).then(rest.struct.field("field_0")).otherwise(whole.struct.field("field_0")),
        _query=pl.when(is_abs).then(rest.struct.field("field_1")).otherwise(whole.struct.field("field_1")),
    )


url_target = st.one_of(
    st.builds(
        "{}{}{}{}{}".format,
        st.sampled_from(["http", "HTTPS", "h2c", "a+b.c-d", "1http", "", "ht tp", "é", "x:y", "http:"]),
        st.sampled_from(["://", ":/", "//", "", ":///"]),
        st.sampled_from(["www.example.com", "host:443", "", "a\nb", "user@h", "h#x", "ex.com?", "é.fr"]),
        st.sampled_from(["", "/", "/a b", "/a?x=1", "?q", "#f", "/x?a?b", "/a\nb", "/p://q", "/é"]),
        st.sampled_from(["", "?", "?y=2", "\n", "://z"]),
    ),
    st.text(alphabet="htp:/?#a\n é", max_size=16),
)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.one_of(st.none(), url_target), min_size=1, max_size=8))
def test_targets_split_as_by_the_expression(values):
    df = pl.DataFrame({"t": values}, schema={"t": pl.String})
    got = _split_target(df, "t").select("_scheme", "_host", "_path", "_query")
    assert got.to_dicts() == split_by_expression(df, "t").to_dicts()


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.sampled_from(["-", "", "N/A", "null", "--", " -", "x"])), min_size=1, max_size=8),
    tokens=st.lists(st.sampled_from(["-", "", "N/A", "null"]), min_size=1, max_size=3),
)
def test_null_tokens_become_null_in_every_column_alike(values, tokens):
    """The null tokens are replaced in all string columns by one expression: what a test per
    column (the token list holds the value) gives, tokens repeated or not."""
    df = pl.DataFrame({"a": values, "b": list(reversed(values))}, schema={"a": pl.String, "b": pl.String})
    got = nulls_to_null(df, ["a", "b"], tokens)
    want = df.with_columns(pl.when(pl.col(c).is_in(tokens)).then(None).otherwise(pl.col(c)).alias(c) for c in "ab")
    assert got.to_dicts() == want.to_dicts()

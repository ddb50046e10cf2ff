"""The `extra` JSON object: the cheap writing (concatenation where no value needs escaping)
gives the bytes polars' JSON encoder gives, for any values."""

from __future__ import annotations

import json

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from forensics.normalize import _split_addr_port, extra_expr

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
)
def test_extra_is_what_the_json_encoder_writes(names, rows, data, ints):
    cols = {n: data.draw(st.lists(value, min_size=rows, max_size=rows)) for n in names}
    df = pl.DataFrame(cols, schema=dict.fromkeys(names, pl.String))
    if ints:
        df = df.with_columns(pl.lit(7, pl.Int64).alias("count"))
        names = [*names, "count"]
    got = df.with_columns(extra_expr(df, names).alias("e")).get_column("e").to_list()
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
                     '"10.0.0.1:8080"', " 10.0.0.1:1 ", "host:", ":80", "[x]:y", "1.2.3.4", "[", "a:b:c"]),
    st.text(alphabet="0123456789abcdef.:[] \"", max_size=12),
)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(address, min_size=1, max_size=6), kind=st.sampled_from(["addr_port", "addr_lastport"]))
def test_address_and_port_read_as_by_every_form(values, kind):
    df = pl.DataFrame({"client_addr": values}, schema={"client_addr": pl.String})
    got, _ = _split_addr_port(df, {"client_addr": kind})
    assert got.select("client_addr", "client_port").to_dicts() == all_forms_split(df, "client_addr", kind).to_dicts()

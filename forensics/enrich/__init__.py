"""IP enrichment: where each client was, whose network it used, what kind of client it was.

The pipeline calls one function:

    enrich(con, addresses, user_agents, databases, lists_dir, rdns=False) -> EnrichmentReport

with the client addresses, each with a time it was seen (pass several pairs for the same address
to have Tor exits matched against each time), the user agents each address sent (both as Python
values or as polars frames, which a case with a million addresses needs), the IP database files
(.mmdb) and the folder of published lists. It fills the table `ip_enrichment` (one
row per address, every value with its source in `value_sources`) and `enrichment_sources` (every
database and list used, with type, date and sha256), replacing what an earlier run wrote, and
returns the same facts for manifest.json (`EnrichmentReport.manifest()`).

Nothing here prints; every problem with an input is an EnrichmentError naming the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from forensics.addresses import CANONICAL_IPV4
from forensics.db import empty_table
from forensics.enrich import lists as published
from forensics.enrich import mmdb, useragent
from forensics.enrich import rdns as reverse_dns
from forensics.enrich.mmdb import find_default_databases
from forensics.schema import ENRICHMENT_SOURCES, IP_ENRICHMENT

__all__ = ["EnrichmentReport", "SourceUsed", "enrich", "find_default_databases"]

USER_AGENT_SOURCE = "user agent"
DEMO_FLAG = "demo_geography"


@dataclass(frozen=True)
class SourceUsed:
    source: str  # database or list
    name: str
    type: str
    kind: str
    built: datetime | None
    date_basis: str
    sha256: str
    path: str
    fetched_from: str | None = None
    entries: int | None = None
    demo: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source, "name": self.name, "type": self.type, "kind": self.kind,
            "built": self.built.astimezone(UTC).isoformat().replace("+00:00", "Z") if self.built else None,
            "date_basis": self.date_basis, "sha256": self.sha256, "path": self.path,
            "fetched_from": self.fetched_from, "entries": self.entries, "demo": self.demo,
        }


@dataclass
class EnrichmentReport:
    addresses: int
    sources: list[SourceUsed]
    flag_counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    demo: bool = False

    def manifest(self) -> dict[str, Any]:
        """The enrichment part of manifest.json."""
        out: dict[str, Any] = {
            "addresses": self.addresses,
            "databases": [s.as_json() for s in self.sources if s.source == "database"],
            "lists": [s.as_json() for s in self.sources if s.source == "list"],
            "flags": dict(sorted(self.flag_counts.items())),
            "notes": list(self.notes),
        }
        if self.demo:
            out["demo"] = "demo data, not real geography"
        return out


def _iso(ts: datetime | None) -> str | None:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z") if ts else None


def _utc(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        raise ValueError(f"naive timestamp {ts!r}: enrichment needs times with a zone (UTC)")
    return ts.astimezone(UTC)


def _is_address(text: str) -> bool:
    return CANONICAL_IPV4.fullmatch(text) is not None or published.address_number(text) is not None


def _flags(row: dict[str, Any], several_kinds: bool) -> list[str]:
    flags: list[str] = []
    if row["_not_ip"]:
        flags.append("not_an_ip_address")
    if row["crawler"]:
        if row["crawler_verified"]:
            flags.append(f"verified_crawler:{row['crawler']}")
        else:
            flags.append("claimed_crawler")
    for owner in row["_crawler_networks"]:
        if not (row["crawler_verified"] and useragent.CRAWLER_OWNERS.get(row["crawler"] or "") == owner):
            flags.append(f"crawler_network:{owner}")
    for owner in row["_cloud_owners"]:
        flags.append(f"cloud:{owner}")
    if row["tor_exit"]:
        flags.append("tor_exit")
    elif row["_tor_other_time"]:
        flags.append("tor_exit_other_time")
    for column in ("vpn", "tor", "public_proxy", "residential_proxy", "hosting"):
        if row[column]:
            flags.append(column if column != "tor" else "tor_database")
    if row["anonymous"] and not any(row[c] for c in ("vpn", "tor", "public_proxy", "residential_proxy", "hosting")):
        flags.append("anonymous")
    if row["client_kind"] in (useragent.LINK_PREVIEW, useragent.TOOL):
        flags.append(f"{row['client_kind']}:{row['client_name']}")
    if row["client_kind"] is not None and several_kinds:
        flags.append("several_client_kinds")
    if row["_demo"]:
        flags.append(DEMO_FLAG)
    return flags


def _recorded_path(path: Path, base_dir: Path | None) -> str:
    """A database's or list's path as the case records it: relative to the case file's folder
    ('..' where it lies outside), or just its name when no folder is known."""
    if base_dir is None:
        return Path(path).name
    return Path(os.path.relpath(Path(path).resolve(), Path(base_dir).resolve())).as_posix()


def enrich(
    con: duckdb.DuckDBPyConnection,
    addresses: Sequence[tuple[str, datetime]] | pl.DataFrame,
    user_agents: Mapping[str, Sequence[str | None]] | pl.DataFrame | None,
    databases: Sequence[Path],
    lists_dir: Path | None,
    rdns: bool = False,
    *,
    resolver: reverse_dns.Resolver | None = None,
    base_dir: Path | None = None,
) -> EnrichmentReport:
    """Enrich distinct client addresses and write `ip_enrichment` and `enrichment_sources`.

    addresses: (address, time seen, timezone-aware) pairs; an address may repeat with other times.
    Or a frame of them (columns address, seen).
    user_agents: address -> the User-Agent values it sent (None: no user agents known). Or a frame
    (columns address, user_agents: a list; an address may have several rows, read in order).
    databases: .mmdb files, in the order the case gives them (precedence: mmdb.KINDS).
    lists_dir: folder of published lists (lists.LIST_FORMATS), or None.
    rdns: forward-confirmed reverse DNS for addresses whose user agent claims a crawler
    that their address does not verify; answers cached in `rdns_cache`. Sends those addresses to
    the resolver, so off unless asked for.
    base_dir: the case file's folder; the databases' and lists' paths are recorded relative to
    it, so that no path of the investigator's machine ends up in the case.

    The addresses' values are gathered column by column, never as a record per address held to
    the end: a case with a million addresses kept gigabytes of records and lists of agents.
    """
    seen = _seen_frame(addresses)
    per_address = seen.group_by("address", maintain_order=True).agg(
        pl.col("seen").min().alias("seen_first"), pl.col("seen").max().alias("seen_last")
    )
    kinds = _client_kinds(per_address.get_column("address"), user_agents)
    distinct: list[str] = per_address.get_column("address").to_list()

    sources: list[SourceUsed] = []
    notes: list[str] = []
    lists: list[published.PublishedList] = []
    if lists_dir is not None:
        lists, notes = published.read_lists(Path(lists_dir))
    # Each (address, time) pair as Python values only when there are lists to match them against.
    pairs = zip(seen.get_column("address").to_list(), seen.get_column("seen").to_list(), strict=True) if lists else []
    matches = published.match_lists(con, pairs, lists)
    notes.extend(matches.notes)

    known = kinds.get_column("known").to_list()
    best_kinds = kinds.get_column("kind").to_list()
    best_names = kinds.get_column("name").to_list()
    best_owners = kinds.get_column("owner").to_list()
    several = kinds.get_column("several").to_list()
    claimants = [
        a for a, k, kind, owner in zip(distinct, known, best_kinds, best_owners, strict=True)
        if k and kind == useragent.CRAWLER
        and not any(m.category == "crawler" and m.owner == owner for m in matches.networks.get(a, []))
    ]
    answers = reverse_dns.lookup_cached(con, claimants, resolver) if rdns and claimants else {}

    names = [c for c in IP_ENRICHMENT.column_names if c not in _FRAME_COLUMNS]
    # Each distinct row of values once (most addresses' rows repeat: the same country and network,
    # no list entry, one kind of client), and per address the number of its row.
    distinct_rows: list[list[Any]] = []
    distinct_flags: list[list[str]] = []
    row_of: list[int] = []
    # An address without list entries, Tor observation or reverse DNS answer has a row made of its
    # database values, its user agents' kind and whether it is an address at all, which many share.
    shared_rows: dict[tuple[Any, ...], int] = {}
    flag_counts: dict[str, int] = {}
    # Most addresses share their value sources (the same databases and lists answered): each
    # distinct set is written as JSON once.
    sources_json: dict[tuple[tuple[str, str], ...], str] = {}
    any_tor_list = any(p.tor_observations for p in lists)
    opened = [mmdb.open_database(Path(p)) for p in databases]
    try:
        sources = [
            SourceUsed("database", db.path.name, db.database_type, db.kind.name, db.build_date, "build_epoch",
                       db.sha256, _recorded_path(db.path, base_dir), demo=db.demo)
            for db in opened
        ]
        geo = mmdb.lookup_each(opened, distinct)
        for address, values, is_known, kind, name, owner, mixed in zip(
            distinct, geo, known, best_kinds, best_names, best_owners, several, strict=True
        ):
            nets = matches.networks.get(address, [])
            tor = matches.tor.get(address)
            answer = answers.get(address)
            not_ip = not _is_address(address)
            shared_key: tuple[Any, ...] | None = None
            if not nets and tor is None and answer is None:
                shared_key = (
                    *(values[c] for c in mmdb.COLUMNS), *sorted(values["_sources"].items()), values["_demo"],
                    is_known, kind, name, owner, mixed, not_ip,
                )
                number = shared_rows.get(shared_key)
                if number is not None:
                    row_of.append(number)
                    for flag in distinct_flags[number]:
                        flag_counts[flag] = flag_counts.get(flag, 0) + 1
                    continue
            value_sources: dict[str, str] = dict(values["_sources"])
            cloud = [m for m in nets if m.category in ("cloud", "cdn")]
            crawler_nets = [m for m in nets if m.category == "crawler"]
            row: dict[str, Any] = {c: values[c] for c in mmdb.COLUMNS}
            row.update(
                cloud_provider=cloud[0].owner if cloud else None,
                cloud_service=("; ".join(dict.fromkeys(m.service for m in cloud if m.service)) or None)
                if cloud else None,
                crawler=None, crawler_verified=None, crawler_verified_by=None,
                tor_exit=None, tor_exit_observed=None,
                client_kind=kind if is_known else None,
                client_name=name if is_known else None,
                rdns_hostname=None, _not_ip=not_ip, _demo=values["_demo"],
                _cloud_owners=list(dict.fromkeys(m.owner for m in cloud)) if cloud else [],
                _crawler_networks=list(dict.fromkeys(m.owner for m in crawler_nets)) if crawler_nets else [],
                _tor_other_time=False,
            )
            if cloud:
                value_sources["cloud_provider"] = lists[cloud[0].list_id].label
            if is_known:
                value_sources["client_kind"] = USER_AGENT_SOURCE
            if is_known and kind == useragent.CRAWLER:
                row["crawler"] = name
                by_list = next((m for m in crawler_nets if owner and m.owner == owner), None)
                if answer is not None:
                    row["rdns_hostname"] = answer.hostname if answer.confirmed else None
                if by_list is not None:
                    row["crawler_verified"] = True
                    row["crawler_verified_by"] = f"{lists[by_list.list_id].label} {by_list.network}"
                    value_sources["crawler_verified"] = lists[by_list.list_id].label
                elif answer is not None and answer.under(owner):
                    row["crawler_verified"] = True
                    row["crawler_verified_by"] = f"forward-confirmed reverse DNS {answer.hostname}"
                    value_sources["crawler_verified"] = "reverse DNS"
                else:
                    row["crawler_verified"] = False
                    value_sources["crawler_verified"] = USER_AGENT_SOURCE
            if tor is not None:
                list_id, observed, in_window = tor
                row["tor_exit"] = in_window
                row["tor_exit_observed"] = observed
                row["_tor_other_time"] = not in_window
                value_sources["tor_exit"] = lists[list_id].label
            elif any_tor_list:
                row["tor_exit"] = False
            flags = row["flags"] = _flags(row, mixed)
            key = tuple(sorted(value_sources.items()))
            text = sources_json.get(key)
            if text is None:
                text = sources_json[key] = json.dumps(value_sources, sort_keys=True, ensure_ascii=False)
            row["value_sources"] = text
            for flag in flags:
                flag_counts[flag] = flag_counts.get(flag, 0) + 1
            number = len(distinct_rows)
            distinct_rows.append([row[c] for c in names])
            distinct_flags.append(flags)
            row_of.append(number)
            if shared_key is not None:
                shared_rows[shared_key] = number
    finally:
        for db in opened:
            db.close()
    for pub in lists:
        entries = len(pub.prefixes) + len(pub.tor_observations)
        sources.append(SourceUsed("list", pub.path.name, pub.format, pub.category, pub.date, pub.date_basis,
                                  pub.sha256, _recorded_path(pub.path, base_dir), pub.fetched_from, entries))

    _write(con, per_address, _rows_frame(names, distinct_rows, row_of), sources)
    return EnrichmentReport(len(distinct), sources, flag_counts, notes, demo=any(s.demo for s in sources))


# Columns of ip_enrichment that come whole from the frame of addresses, not from the loop.
_FRAME_COLUMNS = ("address", "seen_first", "seen_last")


def _seen_frame(addresses: Sequence[tuple[str, datetime]] | pl.DataFrame) -> pl.DataFrame:
    """(address, seen in UTC) without missing addresses; a naive time is refused."""
    if isinstance(addresses, pl.DataFrame):
        seen = addresses.select(pl.col("address").cast(pl.String), "seen")
        dtype = seen.schema["seen"]
        if not isinstance(dtype, pl.Datetime) or dtype.time_zone is None:
            raise ValueError(f"naive timestamps ({dtype}): enrichment needs times with a zone (UTC)")
        seen = seen.with_columns(pl.col("seen").dt.convert_time_zone("UTC").dt.cast_time_unit("us"))
    else:
        pairs = [(str(a), _utc(t)) for a, t in addresses if a is not None]
        seen = pl.DataFrame(
            pairs, schema={"address": pl.String, "seen": pl.Datetime("us", "UTC")}, orient="row"
        )
    return seen.filter(pl.col("address").is_not_null())


# Each kind as one bit, so the kinds an address declares are one number.
_KIND_BITS = {rank: 1 << rank for rank in range(len(useragent.KIND_ORDER))}
# Above any agent's position among all addresses' agents: (rank, position) as one number.
_ORDER_SPAN = 1 << 40


def _client_kinds(
    addresses: pl.Series, user_agents: Mapping[str, Sequence[str | None]] | pl.DataFrame | None
) -> pl.DataFrame:
    """Per address, in order: whether its user agents are known, the most telling kind among them
    (useragent.KIND_ORDER, the first of them on a tie) with its name and owner, and whether they
    declare several kinds. Each distinct agent is classified once, for all addresses."""
    # The agents are categorical (each distinct text held once): a million addresses sent tens of
    # millions of agents, gigabytes as text.
    agent_lists = pl.List(pl.Categorical())
    if isinstance(user_agents, pl.DataFrame):
        agents = user_agents.select(pl.col("address").cast(pl.String), pl.col("user_agents").cast(agent_lists))
    else:
        items = list((user_agents or {}).items())
        agents = pl.DataFrame(
            {"address": [a for a, _ in items], "user_agents": _string_lists([v for _, v in items])},
            schema={"address": pl.String, "user_agents": pl.List(pl.String)},
        ).with_columns(pl.col("user_agents").cast(agent_lists))
    # An address known with no agents at all reads as one empty agent (classify_many's rule);
    # exploding would drop it. Rows are numbered, so the exploded agents carry a number rather
    # than their address, and only each agent's rank is joined to them: the kind, name and owner
    # are joined to each address's best agent alone.
    listed = pl.col("user_agents")
    one_empty = pl.lit([None], dtype=pl.List(pl.String)).cast(agent_lists)
    numbered = agents.with_columns(pl.when(listed.list.len() > 0).then(listed).otherwise(one_empty)) \
        .with_row_index("_row")
    each = numbered.select("_row", "user_agents").explode("user_agents").rename({"user_agents": "agent"}) \
        .with_row_index("_order")
    distinct = each.get_column("agent").unique(maintain_order=True).cast(pl.String).to_list()
    classified = [useragent.classify(a) for a in distinct]
    kinds = pl.DataFrame(
        {
            "agent": distinct,
            "_rank": [useragent.KIND_ORDER.index(k.kind) for k in classified],
            "kind": [k.kind for k in classified],
            "name": [k.name for k in classified],
            "owner": [k.owner for k in classified],
        },
        schema={"agent": pl.String, "_rank": pl.Int32, "kind": pl.String, "name": pl.String, "owner": pl.String},
    ).with_columns(pl.col("agent").cast(pl.Categorical()))
    # Per address, the agent with the smallest (rank, order in which it came) as one number, and
    # the kinds it declares as a bit mask: minimums and ors, which polars keeps small, where
    # sorting each address's agents took gigabytes for a million addresses.
    keyed = each.join(kinds.select("agent", "_rank"), on="agent", how="left", nulls_equal=True).select(
        "_row",
        (pl.col("_rank").cast(pl.Int64) * _ORDER_SPAN + pl.col("_order").cast(pl.Int64)).alias("_key"),
        pl.col("_rank").replace_strict(_KIND_BITS, return_dtype=pl.Int32).alias("_kinds"),
    )
    per_address = (
        keyed.join(numbered.select("_row", pl.col("address").cast(pl.Categorical())), on="_row", how="left")
        .group_by("address")
        .agg(pl.col("_key").min(), pl.col("_kinds").bitwise_or())
    )
    best_agent = each.get_column("agent").gather(per_address.get_column("_key") % _ORDER_SPAN)
    best = (
        per_address.select(
            pl.col("address").cast(pl.String),
            pl.lit(best_agent).alias("agent"),
            (pl.col("_kinds").bitwise_count_ones() > 1).alias("several"),
        )
        .join(kinds, on="agent", how="left", nulls_equal=True)
        .select("address", "kind", "name", "owner", "several", pl.lit(True).alias("known"))
    )
    return (
        addresses.to_frame("address")
        .join(best, on="address", how="left", maintain_order="left")
        .with_columns(pl.col("known").fill_null(False), pl.col("several").fill_null(False))
    )


def _string_lists(values: Sequence[Sequence[str | None] | None]) -> pl.Series:
    import pyarrow as pa

    series = pl.from_arrow(pa.array(values, type=pa.list_(pa.string())))
    assert isinstance(series, pl.Series)
    return series


def _value_schema() -> dict[str, pl.DataType]:
    return {
        c.name: (pl.List(pl.String()) if c.sql_type == "VARCHAR[]" else c.polars_type) for c in IP_ENRICHMENT.columns
    }


def _rows_frame(names: list[str], distinct_rows: list[list[Any]], row_of: list[int]) -> pl.DataFrame:
    """The columns `names` of ip_enrichment for every address: its distinct row (by number in
    `distinct_rows`, whose values are in the order of `names`), taken in polars."""
    schema = _value_schema()
    by_column = list(zip(*distinct_rows, strict=True)) if distinct_rows else [() for _ in names]
    # A list column goes through Arrow: polars makes a Series of each row's list (0.39 s for
    # 100,000 rows, against 0.04).
    distinct = pl.DataFrame(
        {c: _string_lists(list(cells)) if schema[c] == pl.List(pl.String()) else list(cells)
         for c, cells in zip(names, by_column, strict=True)},
        schema={c: schema[c] for c in names},
    )
    return distinct.select(pl.all().gather(pl.Series(row_of, dtype=pl.UInt32)))


def _write(
    con: duckdb.DuckDBPyConnection, per_address: pl.DataFrame, filled: pl.DataFrame, sources: list[SourceUsed]
) -> None:
    """ip_enrichment from the frame of addresses (address, seen_first, seen_last) and the other
    columns' values (`filled`) in the same order; enrichment_sources from `sources`."""
    empty_table(con, IP_ENRICHMENT)
    empty_table(con, ENRICHMENT_SOURCES)
    schema = _value_schema()
    given = per_address.select(pl.col(c).cast(schema[c]) for c in _FRAME_COLUMNS)
    frame = pl.concat([given, filled], how="horizontal").select(IP_ENRICHMENT.column_names)
    con.register("ip_enrichment_frame", frame)
    cols = ", ".join(IP_ENRICHMENT.column_names)
    con.execute(f"INSERT INTO {IP_ENRICHMENT.name} ({cols}) SELECT {cols} FROM ip_enrichment_frame")
    con.unregister("ip_enrichment_frame")
    src = pl.DataFrame(
        [
            {"source": s.source, "name": s.name, "type": s.type, "kind": s.kind, "built": s.built,
             "date_basis": s.date_basis, "sha256": s.sha256, "path": s.path, "fetched_from": s.fetched_from,
             "entries": s.entries, "demo": s.demo}
            for s in sources
        ],
        schema=ENRICHMENT_SOURCES.polars_schema(),
        orient="row",
    )
    con.register("enrichment_sources_frame", src)
    cols = ", ".join(ENRICHMENT_SOURCES.column_names)
    con.execute(f"INSERT INTO {ENRICHMENT_SOURCES.name} ({cols}) SELECT {cols} FROM enrichment_sources_frame")
    con.unregister("enrichment_sources_frame")

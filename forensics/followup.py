"""Beyond the downloader list: who to contact, who is probably the same person, how the link spread.

Three follow-ups an investigator does after the downloader list, each a set of tables in the case
database written by SQL stages (forensics/queries/stage_*.sql, each one SELECT in a portable
subset, parameters bound) so that another engine can run the same stages:

- **Requests to network operators** (`operator_requests`): every counted request of every
  downloader with the address, the client port where the log has one, the UTC time (to the
  millisecond where the log has fractions), the outcome and the log line (file, line, SHA-256),
  grouped by network operator (ASN). Behind carrier-grade NAT many subscribers share an address at
  the same second; only the source port tells them apart, so the report says which formats log it.
- **Likely the same downloader** (`downloader_links`, `downloader_groups`): addresses joined by
  documented rules (same IPv6 prefix, same user agent and network within a short interval, byte
  ranges that continue each other across addresses). Groups are suggestions; no address's own
  outcome changes. A group whose members' ranges together cover the file is a complete copy at
  group level.
- **How the link spread** (`referrer_spread`, `spread_hourly`, `spread_milestones`,
  `crawler_fetches`): referring pages in order of first appearance, deliveries per hour by
  referring site, the first download by an outsider, and the crawlers, archives and preview bots
  that fetched the file, with where their operators take removal requests (crawler_operators.toml).

Python does only what SQL cannot do portably, over distinct addresses, never per request: the IPv6
prefix of each address and whether it is in the agency's networks (`client_facts`), and the
connected components of the links (`group_map`).
"""

from __future__ import annotations

import ipaddress
import json
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from forensics.casefile import Case
from forensics.db import empty_table
from forensics.formats import FormatDef, builtin_formats
from forensics.investigate import query_to_parquet, stage_query
from forensics.schema import (
    CRAWLER_FETCHES,
    DOWNLOADER_GROUPS,
    DOWNLOADER_LINKS,
    FOLLOW_UP_TABLES,
    OPERATOR_REQUESTS,
    REFERRER_SPREAD,
    SPREAD_HOURLY,
    SPREAD_MILESTONES,
    SPREAD_REQUESTS,
    Table,
)

# Rows of one group the report shows (members and links each); `same_downloader` has them all.
REPORT_GROUP_ROWS = 50
# More addresses than this sharing one user agent in one network (or, for byte ranges, one user
# agent) are a crowd, not one person: the agent and range rules leave them out, which also keeps
# the pairing's work linear in the downloaders instead of growing with a crowd's square.
CROWD_SIZE = 5

# Each output of the follow-up, as the run writes it beside the downloader list.
OPERATOR_EXPORT = "operator_requests"

# The canonical fields a format can fill with the client's source port: a port column, or an
# address written with its port (client:port, [v6]:port) that the reader splits.
_PORT_TARGETS = ("client_port", "client_addr:addr_port", "client_addr:addr_lastport")
_PORT_LAYOUT_TOKENS = (
    "client_port", "client_addr:addr_port", "client_addr:addr_lastport", "$remote_port", "%{remote}p",
)


@dataclass(frozen=True)
class FollowUpSettings:
    """The rules' parameters, from the case file's [same_downloader] and [agency] tables."""

    ipv6_prefix: int = 64  # privacy addresses rotate inside one /64 (RFC 8981), the usual subscriber prefix
    agent_network_within: timedelta = timedelta(minutes=10)
    ranges_within: timedelta = timedelta(hours=1)
    agency_networks: tuple[str, ...] = ()  # the agency's own addresses: their downloads are not outsiders'
    agency_sites: tuple[str, ...] = ()  # the agency's sites besides the resource's hosts


@dataclass
class FollowUp:
    """What the follow-up found, for the terminal and the manifest."""

    operator_rows: int = 0
    operators: int = 0
    rows_with_port: int = 0
    links: int = 0
    groups: int = 0
    complete_only_together: int = 0
    first_external_download: dict[str, Any] | None = None
    crawler_fetches: int = 0
    notes: list[str] = field(default_factory=list)

    def manifest(self) -> dict[str, Any]:
        return {
            "operator_requests": {"rows": self.operator_rows, "operators": self.operators,
                                  "rows_with_client_port": self.rows_with_port},
            "same_downloader": {"links": self.links, "groups": self.groups,
                                "complete_only_together": self.complete_only_together},
            "spread": {"first_external_download": self.first_external_download,
                       "crawler_fetches": self.crawler_fetches},
            "notes": list(self.notes),
        }


# --- running the stages --------------------------------------------------------------------------


def insert_stage(con: duckdb.DuckDBPyConnection, table: Table, stage: str, **params: Any) -> int:
    """Run one stage (a single SELECT) and append its rows to `table`, columns by the schema's names.

    The stage is a plain SELECT so another engine can run it and write the result its own way; the
    INSERT around it is built here from the schema module (never from input)."""
    select, bound = stage_query(stage, **params)
    cols = ", ".join(table.column_names)
    con.execute(f"INSERT INTO {table.name} ({cols})\nSELECT {cols} FROM (\n{select}\n) AS stage", bound)
    return int(con.execute(f"SELECT count(*) FROM {table.name}").fetchall()[0][0])


def run_follow_up(
    con: duckdb.DuckDBPyConnection,
    settings: FollowUpSettings,
    resource_hosts: Iterable[str] = (),
) -> FollowUp:
    """Rewrite every follow-up table from hits, requests, downloaders and ip_enrichment."""
    for table in FOLLOW_UP_TABLES:
        empty_table(con, table)
    # The rules' settings, so the report and a later reader know what the tables were built with.
    settings_json = json.dumps({
        "agency_networks": list(settings.agency_networks), "agency_sites": list(settings.agency_sites),
        "ipv6_prefix": settings.ipv6_prefix,
        "agent_network_within_s": settings.agent_network_within.total_seconds(),
        "ranges_within_s": settings.ranges_within.total_seconds(),
    })
    con.execute("DELETE FROM case_info WHERE key = 'follow_up_settings'")
    con.execute("INSERT INTO case_info VALUES ('follow_up_settings', $1)", [settings_json])
    result = FollowUp()

    # Requests to network operators.
    result.operator_rows = insert_stage(con, OPERATOR_REQUESTS, "stage_operator_requests")
    row = con.execute(
        "SELECT count(DISTINCT coalesce(CAST(asn AS VARCHAR), 'unknown')), count(client_port) FROM operator_requests"
    ).fetchall()[0]
    if row:
        result.operators, result.rows_with_port = int(row[0]), int(row[1])
    if result.operator_rows and not result.rows_with_port:
        result.notes.append(
            "no log of this case records the client's source port: behind carrier-grade NAT an "
            "address and time alone may not identify a subscriber"
        )

    # Likely the same downloader: pairs by rule, then groups (connected components, in Python).
    addresses = [r[0] for r in con.execute(
        "SELECT DISTINCT client_ip FROM downloaders WHERE client_ip IS NOT NULL ORDER BY 1"
    ).fetchall()]
    con.register("client_facts", client_facts(addresses, settings).to_arrow())
    sites = sorted({h.lower() for h in (*resource_hosts, *settings.agency_sites)})
    con.register("agency_sites", pl.DataFrame({"site": sites}, schema={"site": pl.String}).to_arrow())
    con.register("crawler_operators", pl.DataFrame(crawler_operators(), schema=_OPERATOR_SCHEMA).to_arrow())
    try:
        result.links = insert_stage(
            con, DOWNLOADER_LINKS, "stage_downloader_links",
            agent_network_within_s=settings.agent_network_within.total_seconds(),
            ranges_within_s=settings.ranges_within.total_seconds(),
            crowd_size=CROWD_SIZE,
        )
        links = con.execute("SELECT resource_path, client_a, client_b FROM downloader_links").fetchall()
        # Only the linked clients' times order the groups: a million downloaders' times as Python
        # values took seconds where most cases link a few.
        first_seen = {
            (r, ip): ts for r, ip, ts in con.execute(
                "SELECT d.resource_path, d.client_ip, d.first_seen FROM downloaders AS d "
                "WHERE d.client_ip IS NOT NULL AND EXISTS (SELECT 1 FROM downloader_links AS l "
                "WHERE l.resource_path = d.resource_path AND d.client_ip IN (l.client_a, l.client_b))"
            ).fetchall()
        }
        con.register("group_map", group_map(links, first_seen).to_arrow())
        insert_stage(con, DOWNLOADER_GROUPS, "stage_downloader_groups")
        con.unregister("group_map")
        row = con.execute(
            "SELECT count(DISTINCT resource_path || ' ' || group_id), "
            "count(DISTINCT CASE WHEN group_complete_by = 'ranges_together' THEN resource_path || ' ' || group_id END) "
            "FROM downloader_groups"
        ).fetchall()[0]
        if row:
            result.groups, result.complete_only_together = int(row[0]), int(row[1])

        # How the link spread.
        insert_stage(con, SPREAD_REQUESTS, "stage_spread_requests")
        insert_stage(con, REFERRER_SPREAD, "stage_referrer_spread")
        insert_stage(con, SPREAD_HOURLY, "stage_spread_hourly")
        insert_stage(con, SPREAD_MILESTONES, "stage_spread_milestones")
        result.crawler_fetches = insert_stage(con, CRAWLER_FETCHES, "stage_crawler_fetches")
    finally:
        for view in ("client_facts", "agency_sites", "crawler_operators"):
            con.unregister(view)
    first = con.execute(
        "SELECT resource_path, ts, client_ip, referer FROM spread_milestones "
        "WHERE milestone = 'first_external_download' ORDER BY ts LIMIT 1"
    ).fetchall()
    for resource_path, ts, client_ip, referer in first:
        result.first_external_download = {
            "resource_path": resource_path, "ts": _iso(ts), "client_ip": client_ip, "referer": referer,
        }
    if not settings.agency_networks:
        result.notes.append(
            "no [agency] networks in the case file: the agency's own downloads count as outsiders' "
            "in the spread of the link"
        )
    return result


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat().replace("+00:00", "Z") if ts else None


def client_facts(addresses: Iterable[str], settings: FollowUpSettings) -> pl.DataFrame:
    """Per distinct address: its IPv6 prefix (the configured length) and whether it is the agency's."""
    networks = [ipaddress.ip_network(n, strict=False) for n in settings.agency_networks]
    rows = []
    for address in addresses:
        agency = False
        if networks:  # without [agency] networks no address is the agency's: none is parsed
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                ip = None
            agency = ip is not None and any(ip.version == n.version and ip in n for n in networks)
        rows.append({"client_ip": address, "ipv6_prefix": ipv6_prefix(address, settings.ipv6_prefix),
                     "agency": agency})
    return pl.DataFrame(rows, schema={"client_ip": pl.String, "ipv6_prefix": pl.String, "agency": pl.Boolean})


def group_map(
    links: Iterable[tuple[str, str, str]], first_seen: dict[tuple[str, str], datetime]
) -> pl.DataFrame:
    """Connected components of the links per resource, numbered G1, G2, ... in order of each
    group's first request (then its smallest address), so a rerun numbers them the same."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(node: tuple[str, str]) -> tuple[str, str]:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for resource, a, b in links:
        ra, rb = find((resource, a)), find((resource, b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    components: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for node in list(parent):
        components.setdefault(find(node), []).append(node)
    rows: list[dict[str, str]] = []
    by_resource: dict[str, list[list[tuple[str, str]]]] = {}
    for members in components.values():
        by_resource.setdefault(members[0][0], []).append(members)
    far = datetime.max.replace(tzinfo=None)
    for resource, groups in sorted(by_resource.items()):
        def order(members: list[tuple[str, str]]) -> tuple[datetime, str]:
            times = [first_seen[m].replace(tzinfo=None) for m in members if m in first_seen]
            return (min(times, default=far), min(ip for _, ip in members))

        for i, members in enumerate(sorted(groups, key=order), start=1):
            rows.extend({"resource_path": resource, "client_ip": ip, "group_id": f"G{i}"} for _, ip in sorted(members))
    return pl.DataFrame(rows, schema={"resource_path": pl.String, "client_ip": pl.String, "group_id": pl.String})


# --- formats and ports ---------------------------------------------------------------------------


def format_logs_port(fmt: FormatDef) -> bool:
    """True when the format's definition can fill the client's source port."""
    if any(str(v).startswith(_PORT_TARGETS) for v in fmt.fields.values()):
        return True
    return any(token in layout for layout in fmt.layouts for token in _PORT_LAYOUT_TOKENS)


def formats_logging_ports(formats: Sequence[FormatDef] | None = None) -> tuple[list[str], list[str]]:
    """(formats that log the client port, formats that do not), by name."""
    defs = list(builtin_formats().values()) if formats is None else list(formats)
    with_port = sorted(f.name for f in defs if format_logs_port(f))
    without = sorted(f.name for f in defs if not format_logs_port(f))
    return with_port, without


# --- outputs -------------------------------------------------------------------------------------


# The operator export's whole numbers (ports, statuses) are written as 64-bit integers.
_NARROW_INTEGERS = (pl.Int8, pl.Int16, pl.Int32, pl.UInt8, pl.UInt16, pl.UInt32)


def _operator_sql(con: duckdb.DuckDBPyConnection, outer: str, **params: Any) -> pl.DataFrame:
    """A query over the operator export (`operator_requests`, every network), through Arrow."""
    sql, bound = stage_query("operator_requests", asn=None)
    result = con.sql(outer.format(export=f"(\n{sql}\n) AS o"), params={**bound, **params})
    frame = pl.from_arrow(result.to_arrow_table())
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.col(*_NARROW_INTEGERS).cast(pl.Int64))


def operator_export(con: duckdb.DuckDBPyConnection, limit: int | None = None) -> pl.DataFrame:
    """The operator export as the named query `operator_requests` gives it (every network), or its
    first `limit` rows."""
    if limit is None:
        return _operator_sql(con, "SELECT * FROM {export}")
    return _operator_sql(con, "SELECT * FROM {export} LIMIT $limit", limit=limit)


def write_operator_export(con: duckdb.DuckDBPyConnection, out_dir: Path) -> dict[str, Path]:
    """operator_requests.csv and operator_requests.xlsx: the requests to network operators. The
    rows go from DuckDB to a Parquet file in the output folder (removed after), from which both
    files are written a block of rows at a time: a case's millions of counted requests are never
    in memory whole."""
    from forensics.listfiles import replaced_whole, write_csv
    from forensics.spreadsheet import write_downloaders_xlsx

    staged = out_dir / f".{OPERATOR_EXPORT}.parquet.partial"
    csv_path, xlsx_path = out_dir / f"{OPERATOR_EXPORT}.csv", out_dir / f"{OPERATOR_EXPORT}.xlsx"
    try:
        query_to_parquet(con, "operator_requests", staged, asn=None)
        rows = pl.scan_parquet(staged).with_columns(pl.col(*_NARROW_INTEGERS).cast(pl.Int64))
        with replaced_whole(csv_path) as partial:
            write_csv(rows, partial)
        with replaced_whole(xlsx_path) as partial:
            write_downloaders_xlsx(rows, partial, sheet=OPERATOR_EXPORT)
    finally:
        staged.unlink(missing_ok=True)
    return {csv_path.name: csv_path, xlsx_path.name: xlsx_path}


# --- data shipped with the package ---------------------------------------------------------------


_OPERATOR_SCHEMA = {
    "crawler": pl.String, "verifiable": pl.Boolean, "operator": pl.String, "removal_url": pl.String,
    "removal_note": pl.String, "removal_source": pl.String,
}


def crawler_operators() -> list[dict[str, Any]]:
    """Every crawler, archive and preview bot the user-agent rules name: whether its claim can be
    checked against published ranges (verifiable), who runs it and where it takes removal requests
    (forensics/crawler_operators.toml, each entry with the page that documents it)."""
    from forensics.enrich import useragent

    text = resources.files("forensics").joinpath("crawler_operators.toml").read_text(encoding="utf-8")
    entries = tomllib.loads(text).get("crawlers", {})
    names = [r.name for r in useragent.CLIENT_RULES if r.kind in (useragent.CRAWLER, useragent.LINK_PREVIEW)]
    out = []
    for name in sorted({*names, *entries}):
        entry = entries.get(name, {})
        out.append({
            "crawler": name,
            "verifiable": useragent.CRAWLER_OWNERS.get(name) is not None,
            "operator": entry.get("operator"),
            "removal_url": entry.get("removal_url"),
            "removal_note": entry.get("note"),
            "removal_source": entry.get("source"),
        })
    return out


# --- addresses ---------------------------------------------------------------------------------


def ipv6_prefix(address: str, length: int) -> str | None:
    """The address's IPv6 prefix of `length` bits as text (2001:db8:1:2::/64), None for IPv4."""
    if ":" not in address:  # not IPv6 (nor IPv4-mapped IPv6), whatever it is
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if not isinstance(ip, ipaddress.IPv6Address) or ip.ipv4_mapped is not None:
        return None
    return str(ipaddress.ip_network(f"{ip}/{length}", strict=False))


def settings_from_case(case: Case) -> FollowUpSettings:
    """The follow-up rules' parameters from the case file's [same_downloader] and [agency] tables."""
    same, agency = case.same_downloader, case.agency
    return FollowUpSettings(
        ipv6_prefix=same.ipv6_prefix,
        agent_network_within=same.agent_network_within,
        ranges_within=same.ranges_within,
        agency_networks=tuple(agency.networks),
        agency_sites=tuple(agency.sites),
    )


# --- the report's sections -----------------------------------------------------------------------


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or {})
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# The report shows the first requests to network operators; all of them are in
# operator_requests.csv and .xlsx (a report with millions of rows opens in no browser).
REPORT_OPERATOR_ROWS = 2000


def report_context(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """What the report's follow-up sections show, from the follow-up tables (empty when a case was
    written before they existed)."""
    # Counted in DuckDB and only the rows shown fetched: the export can have millions of rows. The
    # totals are counted on the table the export lists (every row, by the export's operator and
    # network) rather than through the export's query, which would format and sort them all first.
    totals = {
        (op, asn): (requests, clients)
        for op, asn, requests, clients in con.execute(
            "SELECT coalesce(as_org, 'unknown network'), asn, count(*), count(DISTINCT client_ip) "
            "FROM operator_requests GROUP BY ALL"
        ).fetchall()
    }
    export_rows = sum(requests for requests, _ in totals.values())
    operators: list[dict[str, Any]] = []
    for row in operator_export(con, REPORT_OPERATOR_ROWS).iter_rows(named=True):
        if not operators or (operators[-1]["operator"], operators[-1]["asn"]) != (row["operator"], row["asn"]):
            requests, clients = totals[(row["operator"], row["asn"])]
            operators.append(
                {"operator": row["operator"], "asn": row["asn"], "rows": [], "requests": requests, "clients": clients}
            )
        operators[-1]["rows"].append(row)
    port_sources = _rows(
        con,
        """
        SELECT format, role, count(*) AS requests, count(client_port) AS with_port,
               count(*) FILTER (WHERE client_basis = 'forwarded_for') AS behind_proxy
        FROM operator_requests GROUP BY format, role ORDER BY format, role
        """,
    )
    with_port, without_port = formats_logging_ports()
    return {
        "operators": operators,
        "operator_rows": export_rows,
        "operator_rows_shown": min(export_rows, REPORT_OPERATOR_ROWS),
        "operator_port_sources": port_sources,
        "formats_with_port": with_port,
        "formats_without_port": without_port,
        "groups": _groups(con),
        "settings": _settings(con),
        **_spread(con),
    }


def _settings(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The rules' settings the run recorded in case_info (empty for a case written before)."""
    rows = con.execute("SELECT value FROM case_info WHERE key = 'follow_up_settings'").fetchall()
    return dict(json.loads(rows[0][0])) if rows else {}


def _groups(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    members = _rows(con, "SELECT * FROM downloader_groups ORDER BY resource_path, group_id, first_seen, client_ip")
    links = _rows(con, "SELECT * FROM downloader_links ORDER BY resource_path, client_a, client_b, rule")
    groups: list[dict[str, Any]] = []
    for m in members:
        if not groups or (groups[-1]["resource_path"], groups[-1]["group_id"]) != (m["resource_path"], m["group_id"]):
            groups.append({**m, "members": [], "links": []})
        groups[-1]["members"].append(m)
    by_group: dict[tuple[str, str], list[dict[str, Any]]] = {}
    group_of = {(m["resource_path"], m["client_ip"]): m["group_id"] for m in members}
    for x in links:
        key = (x["resource_path"], group_of.get((x["resource_path"], x["client_a"]), ""))
        by_group.setdefault(key, []).append(x)
    for g in groups:
        g_links = by_group.get((g["resource_path"], g["group_id"]), [])
        g["rules"] = sorted({x["rule"] for x in g_links})
        g["member_count"], g["link_count"] = len(g["members"]), len(g_links)
        # A report stays readable: the first rows of a large group, the rest in the case database.
        g["members"], g["links"] = g["members"][:REPORT_GROUP_ROWS], g_links[:REPORT_GROUP_ROWS]
    return groups


def _spread(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    referrers = _rows(con, "SELECT * FROM referrer_spread ORDER BY resource_path, appearance")
    milestones = _rows(
        con,
        """
        SELECT * FROM spread_milestones
        ORDER BY resource_path, CASE milestone WHEN 'first_request' THEN 1 WHEN 'first_download' THEN 2
            WHEN 'first_crawler_fetch' THEN 3 WHEN 'first_external_request' THEN 4
            WHEN 'first_external_download' THEN 5 ELSE 6 END
        """,
    )
    hourly = _rows(con, "SELECT * FROM spread_hourly ORDER BY resource_path, hour_start, referer_site")
    # Sites as columns in order of first appearance; hours as rows.
    sites: list[str] = []
    for r in referrers:
        if r["referer_site"] not in sites:
            sites.append(r["referer_site"])
    hours: dict[Any, dict[str, int]] = {}
    for h in hourly:
        hours.setdefault(h["hour_start"], {})[h["referer_site"]] = int(h["deliveries"])
    return {
        "referrers": referrers,
        "milestones": milestones,
        "hourly_sites": sites,
        "hourly": [{"hour_start": k, "by_site": v, "total": sum(v.values())} for k, v in sorted(hours.items())],
        "crawler_fetches": _rows(
            con, "SELECT * FROM crawler_fetches ORDER BY resource_path, first_seen, client_ip"
        ),
    }

"""Beyond the downloader list: requests to network operators.

A follow-up is a set of tables in the case database written by SQL stages
(forensics/queries/stage_*.sql, each one SELECT in a portable subset, parameters bound) so that
another engine can run the same stages.

**Requests to network operators** (`operator_requests`): every counted request of every downloader
with the address, the client port where the log has one, the UTC time (to the millisecond where the
log has fractions), the outcome and the log line (file, line, SHA-256), grouped by network operator
(ASN). Behind carrier-grade NAT many subscribers share an address at the same second; only the
source port tells them apart, so the report says which formats log it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from forensics.db import named_queries
from forensics.formats import FormatDef, builtin_formats
from forensics.investigate import stage_query
from forensics.schema import FOLLOW_UP_TABLES, OPERATOR_REQUESTS, Table

# Each output of the follow-up, as the run writes it beside the downloader list.
OPERATOR_EXPORT = "operator_requests"

# The canonical fields a format can fill with the client's source port: a port column, or an
# address written with its port (client:port, [v6]:port) that the reader splits.
_PORT_TARGETS = ("client_port", "client_addr:addr_port", "client_addr:addr_lastport")
_PORT_LAYOUT_TOKENS = ("client_port", "client_addr:addr_port", "client_addr:addr_lastport", "$remote_port")


@dataclass(frozen=True)
class FollowUpSettings:
    """The rules' parameters, from the case file's [same_downloader] and [spread] tables."""

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
    notes: list[str] = field(default_factory=list)

    def manifest(self) -> dict[str, Any]:
        return {
            "operator_requests": {"rows": self.operator_rows, "operators": self.operators,
                                  "rows_with_client_port": self.rows_with_port},
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
    row = con.execute(f"SELECT count(*) FROM {table.name}").fetchone()
    return int(row[0]) if row else 0


def run_follow_up(
    con: duckdb.DuckDBPyConnection,
    settings: FollowUpSettings,
    resource_hosts: Iterable[str] = (),
) -> FollowUp:
    """Rewrite every follow-up table from hits, requests, downloaders and ip_enrichment."""
    for table in FOLLOW_UP_TABLES:
        con.execute(f"DELETE FROM {table.name}")  # fixed table names from the schema, never input
    result = FollowUp()
    result.operator_rows = insert_stage(con, OPERATOR_REQUESTS, "stage_operator_requests")
    row = con.execute(
        "SELECT count(DISTINCT coalesce(CAST(asn AS VARCHAR), 'unknown')), count(client_port) FROM operator_requests"
    ).fetchone()
    if row:
        result.operators, result.rows_with_port = int(row[0]), int(row[1])
    if result.operator_rows and not result.rows_with_port:
        result.notes.append(
            "no log of this case records the client's source port: behind carrier-grade NAT an "
            "address and time alone may not identify a subscriber"
        )
    return result


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


def operator_export(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The operator export as the named query `operator_requests` gives it (every network)."""
    q = named_queries()["operator_requests"]
    cur = con.execute(q.sql, {"asn": None})
    names = [d[0] for d in cur.description or []]
    schema = {n: t for n, t in zip(names, _export_types(cur), strict=True)}
    return pl.DataFrame(cur.fetchall(), schema=schema, orient="row")


def _export_types(cur: duckdb.DuckDBPyConnection) -> list[pl.DataType]:
    types: list[pl.DataType] = []
    for d in cur.description or []:
        kind = str(d[1]).upper()
        if kind in ("BIGINT", "INTEGER", "SMALLINT", "NUMBER"):
            types.append(pl.Int64())
        elif kind in ("BOOLEAN", "BOOL"):
            types.append(pl.Boolean())
        else:
            types.append(pl.String())
    return types


def write_operator_export(con: duckdb.DuckDBPyConnection, out_dir: Path) -> dict[str, Path]:
    """operator_requests.csv and operator_requests.xlsx: the requests to network operators."""
    from forensics.pipeline import write_csv
    from forensics.spreadsheet import write_downloaders_xlsx

    frame = operator_export(con)
    csv_path = out_dir / f"{OPERATOR_EXPORT}.csv"
    write_csv(frame, csv_path)
    xlsx_path = write_downloaders_xlsx(frame, out_dir / f"{OPERATOR_EXPORT}.xlsx", sheet=OPERATOR_EXPORT)
    return {csv_path.name: csv_path, xlsx_path.name: xlsx_path}


# --- addresses ---------------------------------------------------------------------------------


def ipv6_prefix(address: str, length: int) -> str | None:
    """The address's IPv6 prefix of `length` bits as text (2001:db8:1:2::/64), None for IPv4."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if not isinstance(ip, ipaddress.IPv6Address) or ip.ipv4_mapped is not None:
        return None
    return str(ipaddress.ip_network(f"{ip}/{length}", strict=False))


def settings_from_case(case: Any) -> FollowUpSettings:
    """The follow-up rules' parameters from the case file (defaults where it says nothing)."""
    return FollowUpSettings()


# --- the report's sections -----------------------------------------------------------------------


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or {})
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def report_context(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """What the report's follow-up sections show, from the follow-up tables (empty when a case was
    written before they existed)."""
    export = operator_export(con)
    operators: list[dict[str, Any]] = []
    for row in export.iter_rows(named=True):
        if not operators or (operators[-1]["operator"], operators[-1]["asn"]) != (row["operator"], row["asn"]):
            operators.append({"operator": row["operator"], "asn": row["asn"], "rows": []})
        operators[-1]["rows"].append(row)
    for op in operators:
        op["clients"] = len({r["client_ip"] for r in op["rows"]})
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
        "operator_rows": export.height,
        "operator_port_sources": port_sources,
        "formats_with_port": with_port,
        "formats_without_port": without_port,
    }

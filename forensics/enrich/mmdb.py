"""IP databases in MaxMind DB format: MaxMind GeoLite2/GeoIP2, DB-IP lite and IPinfo, read with
`maxminddb` (its C extension where installed: MODE_AUTO) and normalised to the same columns.

Spec: MaxMind DB File Format Specification 2.0 (https://maxmind.github.io/MaxMind-DB/). Record
layouts: MaxMind's GeoIP2 database schemas (nested `country`/`city`/`location`/`subdivisions`
maps, flat `autonomous_system_*` and `is_*` keys), DB-IP's lite files (GeoLite2-compatible) and
IPinfo's data downloads (flat keys; `asn` as a string "AS13335"; the legacy privacy file writes
booleans as the strings "true"/"").

Each file's kind comes from its `database_type` and, failing that, from the keys of its first
non-empty records. KINDS below is the one table of kinds, and also the precedence: when several
files give a value for the same column, the file whose kind comes first in KINDS wins (ties: the
order the files were given). Flags are the exception: a flag is true when any file says so (the
investigator wants to know that one database calls the address a VPN), false when a file covering
that flag has the address without it, and empty when no file covering it has the address.

An address that a file does not contain gives empty values from that file, never an error. A
file that cannot be read or does not hold what an IP database holds is an EnrichmentError that
names it: the metadata must be complete and its build date a real date, the search tree must be
followed from its root to every node and hold only valid record values, and records must decode.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import maxminddb
import polars as pl
import pyarrow as pa

from forensics.errors import EnrichmentError

GEO = ("country", "country_name", "subdivision", "city", "latitude", "longitude")
NETWORK = ("asn", "as_org")
FLAGS = ("anonymous", "vpn", "hosting", "tor", "public_proxy", "residential_proxy")
COLUMNS = (*GEO, *NETWORK, *FLAGS)


@dataclass(frozen=True)
class DatabaseKind:
    """One kind of IP database: how to recognise it and which columns it answers for."""

    name: str
    vendor: str
    type_pattern: str  # searched (case-insensitive) in the file's database_type
    shape: frozenset[str]  # a record having all these keys is of this kind
    columns: tuple[str, ...]


# Precedence order (see the module docstring). Recognition tries IPinfo's names first because
# they contain words (country, asn) that MaxMind's names also use.
KINDS: tuple[DatabaseKind, ...] = (
    DatabaseKind("maxmind-enterprise", "MaxMind", r"enterprise", frozenset({"city", "traits"}), (*GEO, *NETWORK)),
    DatabaseKind("maxmind-city", "MaxMind/DB-IP", r"city", frozenset({"city", "location"}), GEO),
    DatabaseKind(
        "ipinfo-core", "IPinfo", r"^ipinfo .*core", frozenset({"country_code", "city", "is_hosting"}),
        (*GEO, *NETWORK, "anonymous", "hosting"),
    ),
    DatabaseKind("maxmind-isp", "MaxMind", r"isp", frozenset({"isp", "autonomous_system_number"}), NETWORK),
    DatabaseKind("maxmind-asn", "MaxMind/DB-IP", r"asn", frozenset({"autonomous_system_number"}), NETWORK),
    DatabaseKind(
        "maxmind-anonymous-plus", "MaxMind", r"anonymous-plus", frozenset({"anonymizer_confidence", "is_anonymous"}),
        FLAGS,
    ),
    DatabaseKind("maxmind-anonymous-ip", "MaxMind", r"anonymous-ip", frozenset({"is_anonymous"}), FLAGS),
    DatabaseKind(
        "maxmind-residential-proxy", "MaxMind", r"residential-proxy",
        frozenset({"provider_name", "anonymizer_confidence", "network_last_seen"}), ("residential_proxy",),
    ),
    DatabaseKind(
        "ipinfo-privacy", "IPinfo", r"^ipinfo .*privacy", frozenset({"vpn", "proxy", "tor", "hosting"}),
        ("anonymous", "vpn", "hosting", "tor", "public_proxy"),
    ),
    DatabaseKind(
        "ipinfo-lite", "IPinfo", r"^ipinfo .*lite", frozenset({"country_code", "continent_code"}),
        ("country", "country_name", *NETWORK),
    ),
    DatabaseKind(
        "ipinfo-country-asn", "IPinfo", r"^ipinfo .*country_asn", frozenset({"country", "country_name", "as_name"}),
        ("country", "country_name", *NETWORK),
    ),
    DatabaseKind("ipinfo-asn", "IPinfo", r"^ipinfo .*asn", frozenset({"asn", "name"}), NETWORK),
    DatabaseKind(
        "ipinfo-country", "IPinfo", r"^ipinfo .*country", frozenset({"country", "country_name"}),
        ("country", "country_name"),
    ),
    DatabaseKind(
        "maxmind-country", "MaxMind/DB-IP", r"country", frozenset({"country", "continent"}), ("country", "country_name")
    ),
)
_RECOGNITION_ORDER = sorted(KINDS, key=lambda k: (not k.type_pattern.startswith("^ipinfo"), KINDS.index(k)))
KIND_BY_NAME = {k.name: k for k in KINDS}

# database_type of the databases demo.py builds: every value from them is flagged demo_geography.
DEMO_TYPE_PREFIX = "Forensics-Demo-"

_METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"
_REQUIRED_METADATA = (
    "node_count", "record_size", "ip_version", "database_type", "binary_format_major_version", "build_epoch",
)


@dataclass
class IPDatabase:
    """An opened, checked database file."""

    path: Path
    kind: DatabaseKind
    database_type: str
    build_date: datetime
    sha256: str
    ip_version: int
    demo: bool = False
    reader: Any = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return f"{self.path.name} ({self.database_type}, built {self.build_date:%Y-%m-%d})"

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None


def _bad(path: Path, why: str) -> EnrichmentError:
    return EnrichmentError(
        f"not a readable IP database: {why}",
        hint="download the file again (geoipupdate, or the vendor's download page) or remove it from "
        "[enrich] databases / --db",
        path=path,
    )


def _check_search_tree(path: Path, data: bytes, node_count: int, record_size: int) -> None:
    """Follow the spec's layout: the tree, 16 zero bytes, the data section, the metadata. Every node
    but the root must be the target of some record (a tree has no orphan nodes), and every record
    is a node, 'not found' (== node_count) or a pointer inside the data section."""
    tree_size = node_count * record_size * 2 // 8
    meta_at = data.rfind(_METADATA_MARKER)
    data_start = tree_size + 16
    if meta_at < data_start:
        raise _bad(path, f"the search tree ({node_count} nodes) runs into the metadata")
    if data[tree_size:data_start] != bytes(16):
        raise _bad(path, "no 16-byte separator after the search tree")
    data_size = meta_at - data_start
    node_bytes = record_size // 4
    raw = pl.from_arrow(pa.Array.from_buffers(pa.uint8(), tree_size, [None, pa.py_buffer(data[:tree_size])]))
    assert isinstance(raw, pl.Series)
    idx = pl.int_range(0, node_count, dtype=pl.Int64, eager=True) * node_bytes

    def byte(k: int) -> pl.Series:
        return raw.gather(idx + k).cast(pl.Int64)

    if record_size == 24:
        left = byte(0) * 65536 + byte(1) * 256 + byte(2)
        right = byte(3) * 65536 + byte(4) * 256 + byte(5)
    elif record_size == 28:
        mid = byte(3)
        left = (mid // 16) * 16777216 + byte(0) * 65536 + byte(1) * 256 + byte(2)
        right = (mid % 16) * 16777216 + byte(4) * 65536 + byte(5) * 256 + byte(6)
    else:
        left = byte(0) * 16777216 + byte(1) * 65536 + byte(2) * 256 + byte(3)
        right = byte(4) * 16777216 + byte(5) * 65536 + byte(6) * 256 + byte(7)
    records = pl.concat([left, right])
    pointers = records.filter(records > node_count)
    bad = pointers.filter((pointers < node_count + 16) | (pointers - node_count - 16 >= data_size))
    if len(bad):
        raise _bad(path, f"{len(bad)} search-tree records point outside the data section")
    reached = records.filter(records < node_count).unique()
    reached_count = len(reached) + (0 if (reached == 0).any() else 1)
    if reached_count != node_count:
        orphans = node_count - reached_count
        raise _bad(path, f"{orphans} of {node_count} search-tree nodes cannot be reached from the root")


def _check_metadata(path: Path, meta: Any) -> datetime:
    for key in _REQUIRED_METADATA:
        if getattr(meta, key, None) is None:
            raise _bad(path, f"metadata has no {key}")
    if meta.binary_format_major_version != 2:
        raise _bad(path, f"binary format {meta.binary_format_major_version} is not MaxMind DB 2.x")
    if meta.ip_version not in (4, 6) or meta.record_size not in (24, 28, 32) or meta.node_count <= 0:
        raise _bad(path, "metadata has an impossible ip_version, record_size or node_count")
    if not isinstance(meta.database_type, str) or not meta.database_type:
        raise _bad(path, "metadata has an empty database_type")
    try:
        built = datetime.fromtimestamp(meta.build_epoch, UTC)
    except (OverflowError, OSError, ValueError):
        raise _bad(path, f"build_epoch {meta.build_epoch} is not a date") from None
    return built


def recognise_kind(database_type: str, records: Iterable[dict[str, Any]]) -> DatabaseKind | None:
    """The kind named by database_type, else the first kind whose keys a sample record has."""
    for kind in _RECOGNITION_ORDER:
        if re.search(kind.type_pattern, database_type, re.IGNORECASE):
            return kind
    for record in records:
        keys = set(record)
        for kind in KINDS:
            if kind.shape <= keys:
                return kind
    return None


def _sample_records(reader: Any, limit: int = 200) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n, (_net, record) in enumerate(reader):
        if isinstance(record, dict) and record:
            out.append(record)
            if len(out) >= 5:
                break
        if n >= limit:
            break
    return out


def open_database(path: Path, demo: bool = False) -> IPDatabase:
    """Open and check one database file; raise EnrichmentError naming it if it is not usable."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EnrichmentError(
            f"cannot read the IP database: {exc.strerror or exc}",
            hint="check the path in [enrich] databases or --db",
            path=path,
        ) from None
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        reader = maxminddb.open_database(str(path), maxminddb.MODE_AUTO)
    except (maxminddb.InvalidDatabaseError, ValueError, TypeError, OSError, UnicodeDecodeError) as exc:
        raise _bad(path, str(exc).split(". ")[0]) from None
    try:
        meta = reader.metadata()
        built = _check_metadata(path, meta)
        _check_search_tree(path, data, meta.node_count, meta.record_size)
        try:
            sample = _sample_records(reader)
        except (maxminddb.InvalidDatabaseError, ValueError, TypeError, UnicodeDecodeError, RecursionError) as exc:
            raise _bad(path, f"records cannot be decoded ({exc})") from None
        kind = recognise_kind(meta.database_type, sample)
        if kind is None:
            keys = sorted({k for r in sample for k in r})
            raise EnrichmentError(
                f"not an IP database this tool knows: database_type {meta.database_type!r}, record keys {keys}",
                hint="use a MaxMind GeoLite2/GeoIP2, DB-IP lite or IPinfo .mmdb file",
                path=path,
            )
    except BaseException:
        reader.close()
        raise
    demo = demo or meta.database_type.startswith(DEMO_TYPE_PREFIX)
    return IPDatabase(path, kind, meta.database_type, built, sha256, meta.ip_version, demo, reader)


def lookup_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address to look up: IPv4-mapped IPv6 (::ffff:a.b.c.d) as the IPv4 it carries, because
    writers that alias it (MaxMind) and writers that do not (IPv4 stored at ::a.b.c.d) both answer
    the IPv4 form. None when the text is not an address."""
    try:
        addr = ipaddress.ip_address(text.strip().strip("[]"))
    except (ValueError, AttributeError):
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _en(names: Any) -> str | None:
    if isinstance(names, dict):
        value = names.get("en") or next(iter(names.values()), None)
        return str(value) if value is not None else None
    return None


def _asn(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        m = re.fullmatch(r"(?:AS)?(\d+)", value.strip(), re.IGNORECASE)
        return int(m.group(1)) if m else None
    return None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):  # IPinfo's legacy privacy file: "true" or ""
        return value.strip().lower() == "true"
    return None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def normalise(record: dict[str, Any] | None, kind: DatabaseKind) -> dict[str, Any]:
    """One record in the shared columns. Columns the kind answers for and the record lacks are
    None, except flags: a record (even `{}`) from a file that covers a flag means 'not flagged'."""
    out: dict[str, Any] = dict.fromkeys(COLUMNS)
    if record is None:
        return out
    if kind.vendor == "IPinfo":
        code = record.get("country_code")
        if code is None and isinstance(record.get("country"), str) and len(record["country"]) == 2:
            code, name = record.get("country"), record.get("country_name")
        else:
            name = record.get("country") if code is not None else record.get("country_name")
        out["country"], out["country_name"] = code, name
        out["subdivision"] = record.get("region")
        out["city"] = record.get("city")
        out["latitude"], out["longitude"] = _float(record.get("latitude")), _float(record.get("longitude"))
        out["asn"] = _asn(record.get("asn"))
        out["as_org"] = record.get("as_name") or record.get("name")
        if kind.name == "ipinfo-core":
            out["anonymous"], out["hosting"] = _bool(record.get("is_anonymous")), _bool(record.get("is_hosting"))
        elif kind.name == "ipinfo-privacy":
            vpn, proxy, tor, relay = (_bool(record.get(k)) for k in ("vpn", "proxy", "tor", "relay"))
            out.update(vpn=vpn, public_proxy=proxy, tor=tor, hosting=_bool(record.get("hosting")))
            out["anonymous"] = bool(vpn or proxy or tor or relay)
    else:
        country = record.get("country")
        if isinstance(country, dict):
            out["country"], out["country_name"] = country.get("iso_code"), _en(country.get("names"))
        subdivisions = record.get("subdivisions")
        if isinstance(subdivisions, list) and subdivisions:
            first = subdivisions[0]
            out["subdivision"] = _en(first.get("names")) or first.get("iso_code")
        if isinstance(record.get("city"), dict):
            out["city"] = _en(record["city"].get("names"))
        location = record.get("location")
        if isinstance(location, dict):
            out["latitude"], out["longitude"] = _float(location.get("latitude")), _float(location.get("longitude"))
        traits = record.get("traits")
        flat = {**traits, **record} if isinstance(traits, dict) else record
        out["asn"] = _asn(flat.get("autonomous_system_number"))
        out["as_org"] = flat.get("autonomous_system_organization") or flat.get("isp")
        for column, key in (
            ("anonymous", "is_anonymous"), ("vpn", "is_anonymous_vpn"), ("hosting", "is_hosting_provider"),
            ("tor", "is_tor_exit_node"), ("public_proxy", "is_public_proxy"),
            ("residential_proxy", "is_residential_proxy"),
        ):
            value = _bool(flat.get(key))
            out[column] = value if value is not None else (False if column in kind.columns else None)
        if kind.name == "maxmind-residential-proxy":
            out["residential_proxy"] = True
    return {c: (v if c in kind.columns else None) for c, v in out.items()}


def lookup(databases: Sequence[IPDatabase], addresses: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Every distinct address looked up in every database, merged by the precedence above.

    Returns {address: {column: value, ..., "_sources": {column: database label}}}."""
    distinct = list(dict.fromkeys(addresses))
    return dict(zip(distinct, lookup_each(databases, distinct), strict=True))


def lookup_each(databases: Sequence[IPDatabase], addresses: Iterable[str]) -> Iterator[dict[str, Any]]:
    """`lookup`'s values of each address in turn (repeats too), made as they are asked for: a
    million addresses' values are never held at once."""
    ordered = sorted(databases, key=lambda d: KINDS.index(d.kind))
    demo_labels = {db.label for db in ordered if db.demo}
    for text in addresses:
        merged: dict[str, Any] = dict.fromkeys(COLUMNS)
        sources: dict[str, str] = {}
        addr = lookup_address(text) if ordered else None  # no database: nothing to parse for
        for db in ordered if addr is not None else ():
            if db.ip_version == 4 and addr is not None and addr.version == 6:
                continue
            try:
                record = db.reader.get(addr)
            except (maxminddb.InvalidDatabaseError, ValueError, TypeError, UnicodeDecodeError, RecursionError) as exc:
                raise _bad(db.path, f"lookup of {text} failed ({exc})") from None
            values = normalise(record if isinstance(record, dict) else None, db.kind)
            for column, value in values.items():
                if value is None:
                    continue
                if column in FLAGS:
                    if merged[column] is None or (value and not merged[column]):
                        merged[column] = value
                        sources[column] = db.label
                elif merged[column] is None:
                    merged[column] = value
                    sources[column] = db.label
        merged["_sources"] = sources
        merged["_demo"] = bool(demo_labels) and any(label in demo_labels for label in sources.values())
        yield merged


# Where geoipupdate writes by default (its DatabaseDirectory: /usr/local/share/GeoIP when built
# from source, /usr/share/GeoIP in Debian/Ubuntu and Fedora packages, /var/lib/GeoIP in some
# distributions and the Docker image), plus Homebrew's.
DEFAULT_DATABASE_DIRS: tuple[Path, ...] = (
    Path("/usr/share/GeoIP"),
    Path("/usr/local/share/GeoIP"),
    Path("/var/lib/GeoIP"),
    Path("/opt/homebrew/var/GeoIP"),
    Path("/usr/local/var/GeoIP"),
)


def find_default_databases(dirs: Sequence[Path] = DEFAULT_DATABASE_DIRS) -> list[Path]:
    """The .mmdb files in the folders geoipupdate writes to, in that folder order, sorted by name."""
    found: list[Path] = []
    for folder in dirs:
        if folder.is_dir():
            found.extend(sorted(p for p in folder.glob("*.mmdb") if p.is_file()))
    return found

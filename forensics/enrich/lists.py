"""Published network lists, read from a folder in the formats their owners publish them in.

Each file is identified by its name (the name the owner publishes it under, LIST_FORMATS below)
and, failing that, by its shape. Every list gets a date of its own, and the rule that gave it
(`date_basis`): the date inside the file (`creationTime` for Google/Bing/Apple/OpenAI/Common
Crawl, `createDate` for AWS, `creationTime` then `syncToken` for Google Cloud,
`last_updated_timestamp` for Oracle, the date in `ServiceTags_Public_YYYYMMDD.json` for Azure,
`Downloaded` for a CollecTor exit list), else when `update_lists` fetched it (from `lists.json`),
else the file's modification time.

Range matching runs in DuckDB: every prefix becomes a row (family, first, last) with the address
as an unsigned 128-bit integer (UHUGEINT; IPv4 in its own family), joined with the addresses.

Tor exits are matched to the time of the request. A CollecTor `exit-list` record says the exit
was seen using an address at `ExitAddress <ip> <time>`; the bulk exit list says the address was
an exit when the list was fetched. Rule: an address is a Tor exit for a request when one of those
observations lies within TOR_MATCH_WINDOW (24 hours) of the request, before or after (exit lists
are published hourly and an exit keeps its address for days, so 24 hours is a generous
neighbourhood without reaching back to an address's previous owner). An address seen as an exit
only further away is reported `tor_exit_other_time`, not `tor_exit`.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
import ipaddress
import json
import re
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from forensics.errors import EnrichmentError

TOR_MATCH_WINDOW = timedelta(hours=24)
LISTS_RECORD = "lists.json"


@dataclass(frozen=True)
class Prefix:
    network: str
    category: str  # crawler, cloud, cdn
    owner: str  # google, bing, apple, openai, commoncrawl, aws, gcp, azure, oracle, digitalocean, cloudflare
    service: str | None = None  # region / service / crawler family, as the owner names it


@dataclass
class PublishedList:
    path: Path
    format: str
    category: str
    owner: str
    date: datetime | None
    date_basis: str
    sha256: str
    prefixes: list[Prefix] = field(default_factory=list)
    tor_observations: list[tuple[str, datetime]] = field(default_factory=list)
    fetched_from: str | None = None

    @property
    def label(self) -> str:
        when = f"{self.date:%Y-%m-%d}" if self.date else "undated"
        return f"{self.path.name} ({self.format}, {when})"


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str | int) or text in ("", None):
        return None
    s = str(text).strip()
    if s.isdigit():  # syncToken: epoch seconds (AWS) or milliseconds (Google Cloud)
        n = int(s)
        return datetime.fromtimestamp(n / 1000 if n > 10**11 else n, UTC)
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)", s)  # AWS createDate
    if m:
        year, month, day, hour, minute, second = (int(g) for g in m.groups())
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)  # the owners publish these in UTC


def _json_date(doc: dict[str, Any], *keys: str) -> tuple[datetime | None, str]:
    for key in keys:
        when = _parse_time(doc.get(key))
        if when is not None:
            return when, key
    return None, ""


# ---- readers, one per family of format --------------------------------------------------------


def _google_style(doc: Any) -> tuple[list[tuple[str, str | None]], datetime | None, str]:
    """Google crawler lists, and Bing, Apple, OpenAI and Common Crawl, which copy them:
    {"creationTime": ..., "prefixes": [{"ipv4Prefix": ...} | {"ipv6Prefix": ...}]}."""
    nets = [
        (p.get("ipv4Prefix") or p.get("ipv6Prefix"), p.get("service") or p.get("scope"))
        for p in doc["prefixes"]
        if p.get("ipv4Prefix") or p.get("ipv6Prefix")
    ]
    when, basis = _json_date(doc, "creationTime", "syncToken")
    return nets, when, basis


def _aws(doc: Any) -> tuple[list[tuple[str, str | None]], datetime | None, str]:
    """AWS ip-ranges.json: prefixes[].ip_prefix and ipv6_prefixes[].ipv6_prefix, with region and
    service; an address is in several rows (AMAZON and EC2), all kept."""
    nets: list[tuple[str, str | None]] = [
        (p["ip_prefix"], f"{p.get('service')} {p.get('region')}") for p in doc.get("prefixes", [])
    ]
    nets += [(p["ipv6_prefix"], f"{p.get('service')} {p.get('region')}") for p in doc.get("ipv6_prefixes", [])]
    when, basis = _json_date(doc, "createDate", "syncToken")
    return nets, when, basis


def _azure(doc: Any) -> tuple[list[tuple[str, str | None]], datetime | None, str]:
    """Azure service tags: values[].properties.addressPrefixes, named by values[].name."""
    nets = [(p, v.get("name")) for v in doc["values"] for p in v.get("properties", {}).get("addressPrefixes", [])]
    return nets, None, ""


def _oracle(doc: Any) -> tuple[list[tuple[str, str | None]], datetime | None, str]:
    """Oracle Cloud public_ip_ranges.json: regions[].cidrs[].cidr."""
    nets = [(c["cidr"], r.get("region")) for r in doc["regions"] for c in r.get("cidrs", [])]
    when, basis = _json_date(doc, "last_updated_timestamp")
    return nets, when, basis


def _text_prefixes(text: str) -> list[tuple[str, str | None]]:
    """One prefix or address per line (Cloudflare ips-v4/ips-v6); '#' comments ignored."""
    return [(line.strip(), None) for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _geofeed(text: str) -> list[tuple[str, str | None]]:
    """RFC 8805 geofeed CSV (DigitalOcean): prefix,country,region,city,postal."""
    out: list[tuple[str, str | None]] = []
    for row in csv.reader(io.StringIO(text)):
        if not row or row[0].lstrip().startswith("#"):
            continue
        place = ", ".join(x for x in (row[3] if len(row) > 3 else "", row[1] if len(row) > 1 else "") if x)
        out.append((row[0].strip(), place or None))
    return out


def parse_exit_list(text: str) -> tuple[list[tuple[str, datetime]], datetime | None]:
    """A CollecTor exit list (@type tor-exit-list 1.0): ExitNode/Published/LastStatus/ExitAddress
    records; every `ExitAddress <ip> <YYYY-MM-DD HH:MM:SS>` (UTC) is one observation."""
    seen: list[tuple[str, datetime]] = []
    downloaded: datetime | None = None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "ExitAddress":
            when = _parse_time(f"{parts[2]} {parts[3]}")
            if when is not None:
                seen.append((parts[1], when))
        elif len(parts) >= 3 and parts[0] == "Downloaded":
            downloaded = _parse_time(f"{parts[1]} {parts[2]}")
    return seen, downloaded


@dataclass(frozen=True)
class ListFormat:
    """One published list: the names its owner publishes it under, what it is, where it is."""

    name: str
    filenames: tuple[str, ...]  # glob patterns, matched case-insensitively
    category: str
    owner: str
    reader: str  # google, aws, azure, oracle, text, geofeed, tor_bulk, tor_exit_list
    url: str | None  # None: no stable URL, fetched by hand


LIST_FORMATS: tuple[ListFormat, ...] = (
    ListFormat("google-common-crawlers", ("common-crawlers.json", "googlebot.json"), "crawler", "google", "google",
               "https://developers.google.com/static/crawling/ipranges/common-crawlers.json"),
    ListFormat("google-special-crawlers", ("special-crawlers.json",), "crawler", "google", "google",
               "https://developers.google.com/static/crawling/ipranges/special-crawlers.json"),
    ListFormat("google-user-triggered-fetchers", ("user-triggered-fetchers*.json",), "crawler", "google", "google",
               "https://developers.google.com/static/crawling/ipranges/user-triggered-fetchers.json"),
    ListFormat("bingbot", ("bingbot.json",), "crawler", "bing", "google", "https://www.bing.com/toolbox/bingbot.json"),
    ListFormat("applebot", ("applebot.json",), "crawler", "apple", "google", "https://search.developer.apple.com/applebot.json"),
    ListFormat("openai-gptbot", ("gptbot.json",), "crawler", "openai", "google", "https://openai.com/gptbot.json"),
    ListFormat("openai-searchbot", ("searchbot.json",), "crawler", "openai", "google", "https://openai.com/searchbot.json"),
    ListFormat("openai-chatgpt-user", ("chatgpt-user.json",), "crawler", "openai", "google", "https://openai.com/chatgpt-user.json"),
    ListFormat("commoncrawl-ccbot", ("ccbot.json",), "crawler", "commoncrawl", "google", "https://index.commoncrawl.org/ccbot.json"),
    ListFormat("aws-ip-ranges", ("ip-ranges.json",), "cloud", "aws", "aws", "https://ip-ranges.amazonaws.com/ip-ranges.json"),
    ListFormat("gcp-cloud", ("cloud.json",), "cloud", "gcp", "google", "https://www.gstatic.com/ipranges/cloud.json"),
    ListFormat("azure-service-tags", ("servicetags_*.json",), "cloud", "azure", "azure", None),
    ListFormat("oracle-public-ip-ranges", ("public_ip_ranges.json",), "cloud", "oracle", "oracle",
               "https://docs.oracle.com/en-us/iaas/tools/public_ip_ranges.json"),
    ListFormat("digitalocean-geofeed", ("google.csv", "digitalocean*.csv"), "cloud", "digitalocean", "geofeed",
               "https://digitalocean.com/geo/google.csv"),
    ListFormat("cloudflare-ips-v4", ("ips-v4", "ips-v4.txt"), "cdn", "cloudflare", "text", "https://www.cloudflare.com/ips-v4"),
    ListFormat("cloudflare-ips-v6", ("ips-v6", "ips-v6.txt"), "cdn", "cloudflare", "text", "https://www.cloudflare.com/ips-v6"),
    ListFormat("tor-bulk-exit-list", ("torbulkexitlist", "torbulkexitlist.txt"), "tor", "torproject", "tor_bulk",
               "https://check.torproject.org/torbulkexitlist"),
    ListFormat("tor-exit-list", ("exit-list-*.tar*", "*exit-list*", "????-??-??-??-??-??"), "tor", "torproject",
               "tor_exit_list", None),
)
FORMAT_BY_NAME = {f.name: f for f in LIST_FORMATS}

# Shapes that identify a file whose name is not the owner's.
_SHAPES: tuple[tuple[str, Callable[[Any], bool]], ...] = (
    ("aws-ip-ranges", lambda d: isinstance(d, dict) and "prefixes" in d and "createDate" in d),
    ("azure-service-tags", lambda d: isinstance(d, dict) and isinstance(d.get("values"), list) and "changeNumber" in d),
    ("oracle-public-ip-ranges", lambda d: isinstance(d, dict) and isinstance(d.get("regions"), list)),
    ("gcp-cloud", lambda d: isinstance(d, dict) and any("scope" in p for p in d.get("prefixes", [])[:5])),
)


def _identify(path: Path, head: bytes) -> ListFormat | None:
    name = path.name.lower()
    for fmt in LIST_FORMATS:
        if any(fnmatch.fnmatch(name, pattern) for pattern in fmt.filenames):
            return fmt
    if head.startswith(b"@type tor-exit-list") or b"\nExitAddress " in head:
        return FORMAT_BY_NAME["tor-exit-list"]
    return None


def _fetch_record(folder: Path) -> dict[str, Any]:
    record = folder / LISTS_RECORD
    if not record.is_file():
        return {}
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data.get("files", {}) if isinstance(data, dict) else {}


def _iter_exit_list_texts(path: Path) -> Iterator[str]:
    if ".tar" in path.name:
        with tarfile.open(path) as tar:
            for member in tar:
                if member.isfile():
                    fh = tar.extractfile(member)
                    if fh is not None:
                        yield fh.read().decode("utf-8", "replace")
    else:
        yield path.read_text(encoding="utf-8", errors="replace")


def read_list(path: Path, fetched: dict[str, Any] | None = None) -> PublishedList | None:
    """Read one file; None when it is not a published list this tool knows."""
    data = path.read_bytes()
    fmt = _identify(path, data[:200])
    doc: Any = None
    if fmt is None and path.suffix.lower() == ".json":
        try:
            doc = json.loads(data)
        except ValueError:
            return None
        fmt = next((FORMAT_BY_NAME[n] for n, test in _SHAPES if test(doc)), None)
    if fmt is None:
        return None
    pub = PublishedList(path, fmt.name, fmt.category, fmt.owner, None, "", hashlib.sha256(data).hexdigest())
    try:
        if fmt.reader in ("google", "aws", "azure", "oracle"):
            doc = doc if doc is not None else json.loads(data)
            reader = {"google": _google_style, "aws": _aws, "azure": _azure, "oracle": _oracle}[fmt.reader]
            nets, pub.date, pub.date_basis = reader(doc)
            if fmt.reader == "azure":
                m = re.search(r"(\d{8})", path.name)
                if m:
                    pub.date, pub.date_basis = datetime.strptime(m.group(1), "%Y%m%d").replace(tzinfo=UTC), "file name"
        elif fmt.reader == "text":
            nets = _text_prefixes(data.decode("utf-8"))
        elif fmt.reader == "geofeed":
            nets = _geofeed(data.decode("utf-8"))
        elif fmt.reader == "tor_bulk":
            nets = []
            undated = datetime.min.replace(tzinfo=UTC)  # dated below, once the list's date is known
            pub.tor_observations = [(ip, undated) for ip, _ in _text_prefixes(data.decode("utf-8"))]
        else:
            nets = []
            for text in _iter_exit_list_texts(path):
                seen, downloaded = parse_exit_list(text)
                pub.tor_observations.extend(seen)
                if downloaded and (pub.date is None or downloaded > pub.date):
                    pub.date, pub.date_basis = downloaded, "Downloaded"
    except (KeyError, TypeError, AttributeError, ValueError, UnicodeDecodeError, tarfile.TarError, EOFError) as exc:
        raise EnrichmentError(
            f"not a valid {fmt.name} list: {type(exc).__name__}: {exc}",
            hint=f"download it again{' from ' + fmt.url if fmt.url else ''}, or remove it from the lists folder",
            path=path,
        ) from None
    info = (fetched or {}).get(path.name, {})
    pub.fetched_from = info.get("url")
    if pub.date is None and _parse_time(info.get("fetched_at")):
        pub.date, pub.date_basis = _parse_time(info.get("fetched_at")), "lists.json fetched_at"
    if pub.date is None:
        pub.date, pub.date_basis = datetime.fromtimestamp(path.stat().st_mtime, UTC), "file mtime"
    if fmt.reader == "tor_bulk":  # the bulk list is one observation of every address, at its date
        pub.tor_observations = [(ip, pub.date) for ip, _ in pub.tor_observations]
    for net, service in nets:
        pub.prefixes.append(Prefix(net, fmt.category, fmt.owner, service))
    return pub


def read_lists(folder: Path) -> tuple[list[PublishedList], list[str]]:
    """Every list in the folder (not recursive), and a note for each file that is not one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EnrichmentError(
            "the lists folder does not exist",
            hint="create it with `forensics lists update DIR`, or fix [enrich] lists",
            path=folder,
        )
    fetched = _fetch_record(folder)
    lists: list[PublishedList] = []
    notes: list[str] = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        if path.name == LISTS_RECORD or path.name.startswith(".") or path.suffix.lower() == ".md":
            continue
        pub = read_list(path, fetched)
        if pub is None:
            notes.append(f"{path.name}: not a published list this tool knows; ignored")
        else:
            lists.append(pub)
    return lists, notes


# ---- matching in DuckDB --------------------------------------------------------------------------


def address_number(text: str) -> tuple[int, int] | None:
    """(family, integer) of an address; IPv4-mapped IPv6 counts as the IPv4 it carries."""
    try:
        addr = ipaddress.ip_address(text.strip().strip("[]"))
    except (ValueError, AttributeError):
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.version, int(addr)


_MATCH_SQL = """
-- name: published_list_matches
-- purpose: every (address, list prefix) pair where the address lies inside the prefix
SELECT a.address, r.list_id, r.network, r.category, r.owner, r.service
FROM enrich_addresses a
JOIN enrich_ranges r ON a.family = r.family AND a.num BETWEEN r.first AND r.last
ORDER BY a.address, r.list_id, r.network
"""

_TOR_SQL = """
-- name: tor_exit_matches
-- purpose: for each address and time it was seen, the nearest Tor exit observation of that address
SELECT s.address, s.seen,
       t.list_id, t.observed,
       abs(epoch(t.observed) - epoch(s.seen)) <= $window_seconds AS in_window
FROM enrich_seen s
JOIN enrich_tor t ON t.num = s.num AND t.family = s.family
QUALIFY row_number() OVER (PARTITION BY s.address ORDER BY abs(epoch(t.observed) - epoch(s.seen))) = 1
"""


@dataclass
class ListMatch:
    list_id: int
    network: str
    category: str
    owner: str
    service: str | None


def _load_addresses(con: duckdb.DuckDBPyConnection, seen: Iterable[tuple[str, datetime]]) -> None:
    rows = []
    numbers: dict[str, tuple[int, int] | None] = {}  # an address is seen at several times
    for text, when in seen:
        number = numbers[text] if text in numbers else numbers.setdefault(text, address_number(text))
        if number is not None:
            rows.append((text, number[0], str(number[1]), when))
    frame = pl.DataFrame(
        rows, schema={"address": pl.String, "family": pl.Int8, "num": pl.String, "seen": pl.Datetime("us", "UTC")},
        orient="row",
    )
    con.register("enrich_seen_frame", frame)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE enrich_seen AS SELECT address, family, CAST(num AS UHUGEINT) AS num, seen "
        "FROM enrich_seen_frame"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE enrich_addresses AS SELECT DISTINCT address, family, num FROM enrich_seen"
    )
    con.unregister("enrich_seen_frame")


def _load_ranges(con: duckdb.DuckDBPyConnection, lists: Sequence[PublishedList]) -> list[str]:
    rows = []
    tor = []
    notes: list[str] = []
    for list_id, pub in enumerate(lists):
        bad = 0
        for p in pub.prefixes:
            try:
                net = ipaddress.ip_network(p.network, strict=False)
            except ValueError:
                bad += 1
                continue
            rows.append((list_id, net.version, str(int(net.network_address)), str(int(net.broadcast_address)),
                         str(net), p.category, p.owner, p.service))
        for ip, when in pub.tor_observations:
            number = address_number(ip)
            if number is None:
                bad += 1
                continue
            tor.append((list_id, number[0], str(number[1]), when))
        if bad:
            notes.append(f"{pub.path.name}: {bad} entries are not networks or addresses; skipped")
    ranges = pl.DataFrame(
        rows,
        schema={"list_id": pl.Int32, "family": pl.Int8, "first": pl.String, "last": pl.String, "network": pl.String,
                "category": pl.String, "owner": pl.String, "service": pl.String},
        orient="row",
    )
    exits = pl.DataFrame(
        tor, schema={"list_id": pl.Int32, "family": pl.Int8, "num": pl.String, "observed": pl.Datetime("us", "UTC")},
        orient="row",
    )
    con.register("enrich_ranges_frame", ranges)
    con.register("enrich_tor_frame", exits)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE enrich_ranges AS SELECT list_id, family, CAST(first AS UHUGEINT) AS first, "
        "CAST(last AS UHUGEINT) AS last, network, category, owner, service FROM enrich_ranges_frame"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE enrich_tor AS SELECT list_id, family, CAST(num AS UHUGEINT) AS num, observed "
        "FROM enrich_tor_frame"
    )
    con.unregister("enrich_ranges_frame")
    con.unregister("enrich_tor_frame")
    return notes


@dataclass
class ListMatches:
    networks: dict[str, list[ListMatch]]
    tor: dict[str, tuple[int, datetime, bool]]  # address -> (list_id, nearest observation, within window)
    notes: list[str]


def match_lists(
    con: duckdb.DuckDBPyConnection, seen: Iterable[tuple[str, datetime]], lists: Sequence[PublishedList]
) -> ListMatches:
    """Match addresses (each with a time it was seen) against the lists, in DuckDB."""
    if not lists:
        return ListMatches({}, {}, [])
    _load_addresses(con, seen)
    notes = _load_ranges(con, lists)
    networks: dict[str, list[ListMatch]] = {}
    for address, list_id, network, category, owner, service in con.execute(_MATCH_SQL).fetchall():
        networks.setdefault(address, []).append(ListMatch(list_id, network, category, owner, service))
    tor: dict[str, tuple[int, datetime, bool]] = {}
    window = {"window_seconds": TOR_MATCH_WINDOW.total_seconds()}
    for address, _seen, list_id, observed, in_window in con.execute(_TOR_SQL, window).fetchall():
        tor[address] = (list_id, observed, bool(in_window))
    for table in ("enrich_seen", "enrich_addresses", "enrich_ranges", "enrich_tor"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return ListMatches(networks, tor, notes)


# ---- downloading ---------------------------------------------------------------------------------


@dataclass
class UpdateReport:
    folder: Path
    fetched: dict[str, str]  # file name -> URL
    failed: dict[str, str]  # file name -> reason
    record: Path


def _target_name(fmt: ListFormat) -> str:
    return fmt.filenames[0] if "*" not in fmt.filenames[0] else fmt.url.rsplit("/", 1)[-1] if fmt.url else fmt.name


def update_lists(
    folder: Path,
    tor_months: Sequence[str] = (),
    opener: Callable[..., Any] = urllib.request.urlopen,
    timeout: float = 30.0,
) -> UpdateReport:
    """Download every list that has a stable URL into `folder` and record in lists.json when and
    from where. `tor_months` ("2022-11", ...) also fetches CollecTor's monthly exit-list archives,
    needed to match Tor exits at the time of an old incident. Azure's service tags have no stable
    URL (the download page names a new file each week): put ServiceTags_Public_*.json there by hand.

    Raises EnrichmentError when nothing could be downloaded (no network)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    targets = [(_target_name(f), f.url) for f in LIST_FORMATS if f.url]
    for month in tor_months:
        if not re.fullmatch(r"\d{4}-\d\d", month):
            raise EnrichmentError(f"{month!r} is not a month", hint='write months like "2022-11"')
        targets.append(
            (f"exit-list-{month}.tar.xz", f"https://collector.torproject.org/archive/exit-lists/exit-list-{month}.tar.xz")
        )
    record_path = folder / LISTS_RECORD
    previous = _fetch_record(folder)
    fetched: dict[str, str] = {}
    failed: dict[str, str] = {}
    for name, url in targets:
        assert url is not None
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "forensics-lists-update"})
            with opener(request, timeout=timeout) as response:
                body = response.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            failed[name] = str(getattr(exc, "reason", exc))
            continue
        tmp = folder / f".{name}.part"
        tmp.write_bytes(body)
        tmp.replace(folder / name)
        previous[name] = {
            "url": url,
            "fetched_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "sha256": hashlib.sha256(body).hexdigest(),
        }
        fetched[name] = url
    if not fetched:
        first = next(iter(failed.values()), "no list to fetch")
        raise EnrichmentError(
            f"could not download any published list ({first})",
            hint="this needs a network connection; on an offline machine copy the files into the folder by hand",
            path=folder,
        )
    record_path.write_text(
        json.dumps({"files": previous, "failed": failed}, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return UpdateReport(folder, fetched, failed, record_path)

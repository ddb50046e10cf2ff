"""The demo's IP databases, built at run time from a committed seed (sample_logs/enrich_seed.csv).

The seed gives each network of the demo incident a made-up location and network owner. From it
this module writes three MaxMind DB files with `mmdb-writer` (PyPI `mmdb-writer`, MIT; pure Python
over `netaddr`, works offline) in the layouts of GeoLite2-City, GeoLite2-ASN and
GeoIP2-Anonymous-IP, so they go through exactly the same reader as real databases. Their
database_type starts with mmdb.DEMO_TYPE_PREFIX and their description says "demo data, not real
geography": every value they give is flagged `demo_geography` in every output.

The demo's published lists (sample_logs/lists/) are small files in their owners' formats.
"""

from __future__ import annotations

import csv
import io
import ipaddress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forensics.enrich.mmdb import DEMO_TYPE_PREFIX
from forensics.errors import EnrichmentError

SAMPLE_LOGS = Path(__file__).resolve().parent.parent.parent / "sample_logs"
DEFAULT_SEED = SAMPLE_LOGS / "enrich_seed.csv"
DEFAULT_LISTS = SAMPLE_LOGS / "lists"
DEMO_DESCRIPTION = "demo data, not real geography"
# The build date written into the demo files: the day before the demo incident, so the files are
# the same bytes on every run (mmdb-writer would otherwise stamp the current time).
DEMO_BUILD_DATE = datetime(2022, 11, 27, tzinfo=UTC)
SEED_COLUMNS = ("network", "country", "country_name", "subdivision", "city", "latitude", "longitude", "asn",
                "as_org", "hosting", "tor")


def read_seed(seed: Path = DEFAULT_SEED) -> list[dict[str, str]]:
    """The seed's rows; lines starting with '#' are comments."""
    try:
        text = seed.read_text(encoding="utf-8")
    except OSError as exc:
        raise EnrichmentError(f"cannot read the demo seed: {exc.strerror or exc}", path=seed) from None
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    rows = list(csv.DictReader(io.StringIO(body)))
    if not rows or tuple(rows[0]) != SEED_COLUMNS:
        raise EnrichmentError(f"the demo seed must have the columns {', '.join(SEED_COLUMNS)}", path=seed)
    return rows


def _writer(database_type: str) -> Any:
    try:
        import mmdb_writer
    except ImportError:
        raise EnrichmentError(
            "building the demo IP databases needs the package mmdb-writer",
            hint="pip install mmdb-writer (it is in the project's dependencies: run `make install`)",
        ) from None

    class _Writer(mmdb_writer.MMDBWriter):  # type: ignore[misc,name-defined]
        def _build_meta(self) -> dict[str, Any]:
            meta: dict[str, Any] = super()._build_meta()
            meta["build_epoch"] = int(DEMO_BUILD_DATE.timestamp())
            return meta

    return _Writer(
        ip_version=6, ipv4_compatible=True, database_type=f"{DEMO_TYPE_PREFIX}{database_type}",
        languages=["en"], description={"en": f"Forensics demo {database_type}: {DEMO_DESCRIPTION}"},
    )


def build_demo_databases(out_dir: Path, seed: Path = DEFAULT_SEED) -> list[Path]:
    """Write demo City, ASN and Anonymous-IP databases into out_dir; return their paths."""
    from mmdb_writer import MmdbF64, MmdbU32
    from netaddr import IPSet

    rows = read_seed(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    city, asn, anonymous = _writer("City"), _writer("ASN"), _writer("Anonymous-IP")
    for n, row in enumerate(rows, start=1):
        try:
            network = IPSet([str(ipaddress.ip_network(row["network"]))])  # stdlib check: a clean ValueError
            names = {"en": row["country_name"]}
            city.insert_network(network, {
                "country": {"iso_code": row["country"], "names": names},
                "subdivisions": [{"names": {"en": row["subdivision"]}}],
                "city": {"names": {"en": row["city"]}},
                "location": {"latitude": MmdbF64(float(row["latitude"])), "longitude": MmdbF64(float(row["longitude"])),
                             "accuracy_radius": 100},
            })
            asn.insert_network(network, {
                "autonomous_system_number": MmdbU32(int(row["asn"])),
                "autonomous_system_organization": row["as_org"],
            })
            hosting, tor = row["hosting"] == "true", row["tor"] == "true"
            if hosting or tor:
                flags = {"is_anonymous": True}
                if hosting:
                    flags["is_hosting_provider"] = True
                if tor:
                    flags["is_tor_exit_node"] = True
                anonymous.insert_network(network, flags)
        except (ValueError, KeyError, TypeError) as exc:
            raise EnrichmentError(f"bad demo seed row {n} ({row.get('network')}): {exc}", path=seed) from None
    paths = []
    for writer, name in ((city, "demo-City.mmdb"), (asn, "demo-ASN.mmdb"), (anonymous, "demo-Anonymous-IP.mmdb")):
        path = out_dir / name
        writer.to_db_file(str(path))
        paths.append(path)
    return paths

"""The demo's IP databases, built at run time from sample_logs/enrich_seed.csv, and its lists."""

from __future__ import annotations

import csv
import hashlib
import ipaddress
from datetime import datetime

import duckdb
import pytest

from forensics.enrich import enrich
from forensics.enrich.demo import DEFAULT_LISTS, DEFAULT_SEED, SAMPLE_LOGS, build_demo_databases, read_seed
from forensics.enrich.mmdb import open_database
from forensics.errors import EnrichmentError

pytest.importorskip("mmdb_writer", reason="the demo databases are written with mmdb-writer")

# Near misses of the scenario (SCENARIO.md): not downloaders, but the demo shows them too.
NEAR_MISSES = ["50.206.37.114", "73.209.150.12"]


def downloaders() -> list[tuple[str, datetime]]:
    with (SAMPLE_LOGS / "expected_downloaders.csv").open(newline="") as fh:
        return [(r["client"], datetime.fromisoformat(r["first_request_utc"].replace("Z", "+00:00")))
                for r in csv.DictReader(fh)]


def test_seed_covers_every_demo_address():
    networks = [ipaddress.ip_network(r["network"]) for r in read_seed(DEFAULT_SEED)]
    for address in [a for a, _ in downloaders()] + NEAR_MISSES:
        ip = ipaddress.ip_address(address)
        assert any(ip in n for n in networks), address


def test_demo_databases_are_read_like_real_ones_and_marked_demo(tmp_path):
    paths = build_demo_databases(tmp_path)
    kinds = {}
    for path in paths:
        db = open_database(path)
        assert db.demo and db.database_type.startswith("Forensics-Demo-")
        assert "demo data, not real geography" in str(db.reader.metadata().description)
        kinds[path.name] = db.kind.name
    assert kinds == {"demo-City.mmdb": "maxmind-city", "demo-ASN.mmdb": "maxmind-asn",
                     "demo-Anonymous-IP.mmdb": "maxmind-anonymous-ip"}
    again = build_demo_databases(tmp_path / "again")
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths] == [
        hashlib.sha256(p.read_bytes()).hexdigest() for p in again]


def test_demo_enrichment_shows_countries_networks_and_kinds(tmp_path):
    con = duckdb.connect()
    agents = {
        "66.249.66.83": ["Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"],
        "51.178.93.214": ["Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"],
        "54.209.87.143": ["Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"],
        "3.89.217.64": ["Wget/1.21.2"],
    }
    report = enrich(con, downloaders(), agents, build_demo_databases(tmp_path), DEFAULT_LISTS)
    got = {r[0]: r[1:] for r in con.execute(
        "SELECT address, country, asn, cloud_provider, crawler_verified, tor_exit, client_kind, flags "
        "FROM ip_enrichment").fetchall()}
    assert len(got) == 35
    assert all(r[0] and r[1] for r in got.values())  # every address has a country and an ASN
    assert all("demo_geography" in r[6] for r in got.values())
    assert {got[a][0] for a in ("2.182.47.139", "95.24.117.203", "117.136.38.92")} == {"IR", "RU", "CN"}
    assert "verified_crawler:googlebot" in got["66.249.66.83"][6]
    assert "claimed_crawler" in got["51.178.93.214"][6] and got["51.178.93.214"][3] is False
    assert got["3.89.217.64"][2] == "aws" and "cloud:aws" in got["3.89.217.64"][6]
    assert got["54.209.87.143"][5] == "link_preview"
    assert got["159.203.88.24"][2] == "digitalocean"
    assert got["185.220.101.47"][4] is True and "tor_exit" in got["185.220.101.47"][6]
    assert "hosting" in got["95.216.142.33"][6]
    assert report.manifest()["demo"] == "demo data, not real geography"


def test_bad_seed_is_a_clean_error(tmp_path):
    seed = tmp_path / "seed.csv"
    seed.write_text("network,country\n1.2.3.0/24,US\n")
    with pytest.raises(EnrichmentError, match="columns"):
        read_seed(seed)
    good = DEFAULT_SEED.read_text().splitlines()
    seed.write_text("\n".join([*good, "not-a-network,US,x,x,x,1,1,1,x,false,false"]) + "\n")
    with pytest.raises(EnrichmentError, match="not-a-network"):
        build_demo_databases(tmp_path / "out", seed)

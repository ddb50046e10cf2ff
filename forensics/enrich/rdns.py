"""Forward-confirmed reverse DNS (FCrDNS), the check the crawler owners document (Google "Verifying
Googlebot", Bing "Verify Bingbot", Apple "About Applebot"): the address's PTR name must end in
the owner's domain, and that name must resolve back to the same address.

Off by default: it sends the addresses under investigation to the DNS resolver, which an
investigator may not want. Answers are cached in the case database (`rdns_cache`) so a rerun asks
nothing again. The resolver is a parameter so tests never touch the network.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import duckdb

from forensics.schema import RDNS_CACHE

# Domains under which each crawler owner's PTR names lie (the owners' verification pages).
CRAWLER_DOMAINS: dict[str, tuple[str, ...]] = {
    "google": ("googlebot.com", "google.com", "googleusercontent.com"),
    "bing": ("search.msn.com",),
    "apple": ("applebot.apple.com",),
    "yandex": ("yandex.ru", "yandex.net", "yandex.com"),
    "baidu": ("baidu.com", "baidu.jp"),
    "openai": ("openai.com",),
    "commoncrawl": ("commoncrawl.org",),
}



class Resolver(Protocol):
    def reverse(self, address: str) -> str | None: ...

    def forward(self, hostname: str) -> list[str]: ...


class SystemResolver:
    """The operating system's resolver (socket), with a per-call timeout."""

    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout

    def reverse(self, address: str) -> str | None:
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(self.timeout)
        try:
            return socket.gethostbyaddr(address)[0]
        except (socket.herror, socket.gaierror, OSError):
            return None
        finally:
            socket.setdefaulttimeout(old)

    def forward(self, hostname: str) -> list[str]:
        try:
            infos = socket.getaddrinfo(hostname, None)
        except (socket.gaierror, OSError):
            return []
        return sorted({str(info[4][0]) for info in infos})


@dataclass(frozen=True)
class RdnsAnswer:
    address: str
    hostname: str | None
    confirmed: bool  # the name resolves back to the address
    error: str | None = None

    def under(self, owner: str | None) -> bool:
        """True when the confirmed name lies under one of the owner's domains."""
        if not (self.confirmed and self.hostname and owner):
            return False
        name = self.hostname.rstrip(".").lower()
        return any(name == d or name.endswith("." + d) for d in CRAWLER_DOMAINS.get(owner, ()))


def _same(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


def forward_confirmed(address: str, resolver: Resolver) -> RdnsAnswer:
    hostname = resolver.reverse(address)
    if not hostname:
        return RdnsAnswer(address, None, False, "no PTR record")
    back = resolver.forward(hostname)
    confirmed = any(_same(address, b) for b in back)
    return RdnsAnswer(address, hostname, confirmed, None if confirmed else "name does not resolve back to the address")


def lookup_cached(
    con: duckdb.DuckDBPyConnection, addresses: Iterable[str], resolver: Resolver | None = None
) -> dict[str, RdnsAnswer]:
    """FCrDNS for each distinct address, from rdns_cache where answered before."""
    con.execute(RDNS_CACHE.ddl())
    wanted = list(dict.fromkeys(addresses))
    answers: dict[str, RdnsAnswer] = {}
    if wanted:
        rows = con.execute(
            "SELECT address, hostname, confirmed, error FROM rdns_cache WHERE list_contains($wanted, address)",
            {"wanted": wanted},
        ).fetchall()
        answers = {r[0]: RdnsAnswer(r[0], r[1], bool(r[2]), r[3]) for r in rows}
    missing = [a for a in wanted if a not in answers]
    if missing:
        resolver = resolver or SystemResolver()
        now = datetime.now(UTC)
        for address in missing:
            answer = forward_confirmed(address, resolver)
            answers[address] = answer
            con.execute("DELETE FROM rdns_cache WHERE address = $a", {"a": address})
            con.execute(
                "INSERT INTO rdns_cache VALUES ($a, $h, $c, $e, $t)",
                {"a": address, "h": answer.hostname, "c": answer.confirmed, "e": answer.error, "t": now},
            )
    return answers

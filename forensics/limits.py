"""The limits of the evidence: what the logs and the case's inputs cannot show.

Every limit is said where the reader looks: the report's answer box, the terminal before the
headline, and manifest.json (`investigation.limits`). A clean zero must mean zero, so a run that
read no log for the window, could not judge the size, found nothing under the resource's name or
used an IP database from another year says so next to the answer, with what to do about it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

# Severity: `blocking` means the answer cannot be taken as it stands (no log covers the window);
# `warning` means the answer holds only with the limit said beside it;
BLOCKING = "blocking"
WARNING = "warning"
# `note`: how the case file was read where that changed it (a decoded path, a host's port dropped).
NOTE = "note"

# Trusted proxy networks wider than these hand the client's own X-Forwarded-For a say in who the
# client is: a /8 is 16 million addresses; an IPv6 /32 is a whole provider's allocation.
WIDEST_TRUSTED_PREFIX = {4: 8, 6: 32}
# An IP database or list dated further than this from the exposure describes another network map:
# addresses change hands and locations move (MaxMind updates GeoLite twice a week).
SOURCE_DATE_TOLERANCE = timedelta(days=30)


@dataclass(frozen=True)
class Limit:
    """One limit of the evidence, in the reader's words, with what would lift it."""

    kind: str
    severity: str
    message: str
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        return f"{self.message}. What to do: {self.fix}" if self.fix else self.message


def trusted_network_limits(trusted: Iterable[str]) -> list[Limit]:
    """A warning for each trusted proxy network wider than /8 (IPv4) or /32 (IPv6)."""
    out = []
    for text in trusted:
        net = ipaddress.ip_network(text, strict=False)
        widest = WIDEST_TRUSTED_PREFIX[net.version]
        if net.prefixlen < widest:
            out.append(Limit(
                "trusted_network_wide", WARNING,
                f"[proxies] trusted has {net}, wider than /{widest}: {net.num_addresses:,} addresses whose "
                "X-Forwarded-For is believed, so a client inside it can name any address as itself",
                "list only the CDN's and load balancer's published ranges",
            ))
    return out


def source_date_limits(sources: Sequence[dict[str, Any]], exposure_start: datetime, exposure_end: datetime,
                       tolerance: timedelta = SOURCE_DATE_TOLERANCE) -> list[Limit]:
    """Warnings for IP databases and lists built far from the exposure, or dated only by their
    file's modification time (which says when the file was copied, not what it describes).

    `sources`: rows of `enrichment_sources` (source, name, built, date_basis, demo).
    """
    out = []
    for s in sources:
        what = "IP database" if s["source"] == "database" else "list"
        built, basis = s.get("built"), s.get("date_basis") or ""
        if s["source"] == "list" and "mtime" in basis:
            out.append(Limit(
                "source_undated", WARNING,
                f"the {what} {s['name']} carries no date of its own (dated by its file's modification "
                "time): its ranges may not be those of the exposure",
                "keep the copy `forensics lists update` fetched, whose date lists.json records, "
                "or one dated for the incident",
            ))
            continue
        if built is None:
            continue
        if built < exposure_start - tolerance or built > exposure_end + tolerance:
            before = built < exposure_start
            days = (exposure_start - built).days if before else (built - exposure_end).days
            side = "before" if before else "after"
            out.append(Limit(
                "source_date", WARNING,
                f"the {what} {s['name']} was built {built:%Y-%m-%d} ({basis}), {days:,} days {side} "
                f"the exposure: its locations and networks may not be those of the time",
                f"use {'an' if what[0] in 'aeiouAEIOU' else 'a'} {what} built within {tolerance.days} days "
                "of the exposure",
            ))
    return out


def limits_manifest(limits: Sequence[Limit]) -> list[dict[str, Any]]:
    return [lim.as_dict() for lim in limits]

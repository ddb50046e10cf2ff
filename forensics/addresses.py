"""Address text shared by the investigation and the enrichment."""

from __future__ import annotations

import re

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# An IPv4 address written as Python's ipaddress writes it: four decimal octets of 0-255, none
# with a leading zero. Most logged addresses are; they are told (and kept as they are) without
# parsing, which for a million addresses costs seconds.
CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}", re.ASCII)

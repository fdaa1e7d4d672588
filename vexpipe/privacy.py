"""Which IOCs must never leave the machine (DESIGN.md, Privacy).

Non-global IP addresses (private, loopback, link-local, multicast, reserved,
documentation ranges) and reserved or local names are never sent to a
provider; ``vex-detect --no-private`` drops them from its output too. Hashes
are never private by themselves; the user's allowlist (issue 5's knowledge
base, config) is checked by the stages that send, not here.
"""

from __future__ import annotations

import ipaddress

# Special-use and local names (RFC 6761, RFC 8375, ICANN's .internal) plus .lan
# and .corp, which home routers and AD forests commonly use and which are not
# delegated in the public DNS.
RESERVED_SUFFIXES = (
    "local", "internal", "localhost", "test", "example", "invalid", "home.arpa",
    "lan", "corp", "intranet", "localdomain",
)
# Internal network names vex-detect reports although no public suffix ends them
# (dc01.corp.local). The RFC 2606 documentation names (.test, .example,
# .invalid) are left out: in logs they are mostly code (unit.test, self.test).
LOCAL_TLDS = frozenset(("local", "internal", "localhost", "lan", "corp", "intranet", "localdomain"))


def ip_reason(value: str) -> str | None:
    """Why an IP address is not global (``"private"``, ``"loopback"``...), or None."""
    try:
        ip = ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_global:
        return None
    for reason in ("loopback", "link_local", "multicast", "private", "unspecified", "reserved"):
        if getattr(ip, f"is_{reason}"):
            return reason.replace("_", "-")
    return "non-global"


def name_reason(name: str) -> str | None:
    """``"reserved-name"`` when a host name ends in a local or special-use suffix."""
    name = name.lower().rstrip(".")
    for suffix in RESERVED_SUFFIXES:
        if name == suffix or name.endswith("." + suffix):
            return "reserved-name"
    return None


def url_host(url: str) -> str:
    """The host of a canonical URL (brackets of an IPv6 literal removed, port dropped)."""
    rest = url.split("://", 1)[-1]
    for c in "/?#":
        rest = rest.split(c, 1)[0]
    if rest.startswith("["):
        return rest[1:rest.find("]")].replace("%25", "%")
    return rest.rsplit(":", 1)[0] if rest.count(":") == 1 else rest


def private_reason(ioc_type: str, ioc: str) -> str | None:
    """Why this IOC must stay on the machine, or None when it may be looked up."""
    if ioc_type in ("ipv4", "ipv6"):
        return ip_reason(ioc)
    if ioc_type == "domain":
        return name_reason(ioc)
    if ioc_type == "email":
        return name_reason(ioc.rsplit("@", 1)[-1])
    if ioc_type == "url":
        host = url_host(ioc)
        return ip_reason(host) or name_reason(host)
    return None

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


class Allowlist:
    """The user's allowlist: IOCs that are never sent to a provider.

    Entries are domain names (the name and every subdomain, also as the host of
    a URL or e-mail address), IP addresses or CIDR networks (also as URL
    hosts), or exact values (a hash, a URL, an address).
    """

    def __init__(self, entries: list[str] | tuple[str, ...] = ()):
        self.names: set[str] = set()
        self.networks: list[ipaddress._BaseNetwork] = []
        self.exact: set[str] = set()
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            if "://" in entry or "@" in entry or all(c in "0123456789abcdef" for c in entry):
                self.exact.add(entry)
            else:
                self.names.add(entry.rstrip("."))

    def __bool__(self) -> bool:
        return bool(self.names or self.networks or self.exact)

    def matches(self, ioc_type: str, ioc: str) -> bool:
        value = ioc.lower()
        if value in self.exact:
            return True
        host = value
        if ioc_type == "url":
            host = url_host(value)
        elif ioc_type == "email":
            host = value.rsplit("@", 1)[-1]
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            labels = host.split(".")
            return any(".".join(labels[i:]) in self.names for i in range(len(labels)))
        return any(ip in net for net in self.networks if net.version == ip.version)

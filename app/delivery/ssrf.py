"""④ The SSRF guard: which addresses a delivery may connect to. Pure, no I/O.

The boundary is the **resolved** address, checked at connect time (``GuardedResolver`` in
``resolver.py`` hands aiohttp only addresses that passed ``refusal_reason``). Checking the URL
at registration (``validate_url`` in ``urls.py``) is a nicer early error, never the boundary.

Policy, in order:

1. An address inside one of the configured ``allowed_networks`` is allowed (local development
   and tests allow ``127.0.0.0/8``).
2. An IPv6 address that carries an IPv4 address (IPv4-mapped, IPv4-compatible, IPv4-translated,
   NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``, ISATAP interface ids) is judged by the IPv4
   address inside it: ``[::ffff:127.0.0.1]`` is loopback, ``[64:ff9b::808:808]`` is 8.8.8.8.
3. An address in ``_REFUSED`` (data below: loopback, private, CGNAT, link-local, cloud
   metadata, multicast, broadcast, unspecified, benchmark, reserved, ULA, site-local, Teredo,
   local-use NAT64, ...) is refused with that row's reason.
4. Anything else that Python does not call global unicast is refused as a safety net
   (``ipaddress.is_global`` is not enough on its own: it says True for 224.0.0.1,
   168.63.129.16 and several IPv6 tunnel forms, which is why rows 2 and 3 exist).

A host name whose answers mix allowed and refused addresses (a public A record and a ``::1``
AAAA record, say) is refused as a whole (Hook0's policy): ``check_addresses`` refuses if any
address is refused, so the outcome never depends on which address a connection happens to try.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence

from app.errors import HookstreamError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class DestinationRefused(HookstreamError):
    """A destination the SSRF guard refuses; raised by the resolver, caught by the sender.

    Deliberately *not* an ``OSError``: aiohttp wraps resolver ``OSError``s into DNS errors,
    and a refusal must stay recognisable (it is recorded and never retried).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _net(text: str) -> IPNetwork:
    return ipaddress.ip_network(text)


# (network, reason). More specific rows come first so the reason names the real thing.
_REFUSED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (_net(net), reason)
    for net, reason in (
        # IPv4
        ("0.0.0.0/8", "unspecified address (0.0.0.0/8)"),
        ("10.0.0.0/8", "private network (10.0.0.0/8)"),
        ("100.64.0.0/10", "carrier-grade NAT (100.64.0.0/10)"),
        ("127.0.0.0/8", "loopback (127.0.0.0/8)"),
        ("169.254.169.254/32", "cloud metadata service (169.254.169.254)"),
        ("169.254.0.0/16", "link-local (169.254.0.0/16)"),
        ("168.63.129.16/32", "cloud metadata service (Azure WireServer 168.63.129.16)"),
        ("172.16.0.0/12", "private network (172.16.0.0/12)"),
        ("192.0.0.0/24", "IETF protocol assignments (192.0.0.0/24)"),
        ("192.0.2.0/24", "documentation (192.0.2.0/24)"),
        ("192.88.99.0/24", "6to4 relay anycast (192.88.99.0/24)"),
        ("192.168.0.0/16", "private network (192.168.0.0/16)"),
        ("198.18.0.0/15", "benchmarking (198.18.0.0/15)"),
        ("198.51.100.0/24", "documentation (198.51.100.0/24)"),
        ("203.0.113.0/24", "documentation (203.0.113.0/24)"),
        ("224.0.0.0/4", "multicast (224.0.0.0/4)"),
        ("255.255.255.255/32", "broadcast (255.255.255.255)"),
        ("240.0.0.0/4", "reserved (240.0.0.0/4)"),
        # IPv6
        ("::/128", "unspecified address (::)"),
        ("::1/128", "loopback (::1)"),
        ("64:ff9b:1::/48", "local-use NAT64 (64:ff9b:1::/48)"),
        ("100::/64", "discard-only (100::/64)"),
        ("2001::/32", "Teredo tunnel (2001::/32)"),
        ("2001:db8::/32", "documentation (2001:db8::/32)"),
        ("fd00:ec2::254/128", "cloud metadata service (AWS fd00:ec2::254)"),
        ("fc00::/7", "unique local address (fc00::/7)"),
        ("fe80::/10", "link-local (fe80::/10)"),
        ("fec0::/10", "site-local (fec0::/10)"),
        ("ff00::/8", "multicast (ff00::/8)"),
    )
)

_MAPPED = _net("::ffff:0:0/96")  # IPv4-mapped ::ffff:a.b.c.d
_TRANSLATED = _net("::ffff:0:0:0/96")  # IPv4-translated ::ffff:0:a.b.c.d (RFC 2765)
_COMPATIBLE = _net("::/96")  # IPv4-compatible ::a.b.c.d (deprecated)
_NAT64 = _net("64:ff9b::/96")  # well-known NAT64 prefix, v4 in the last 32 bits
_SIXTOFOUR = _net("2002::/16")  # 6to4, v4 in bits 16..47
_ISATAP_IIDS = (0x0000_5EFE, 0x0200_5EFE)  # interface id ::0:5efe:a.b.c.d / ::200:5efe:a.b.c.d
_UNSPECIFIED = ipaddress.IPv6Address("::")
_LOOPBACK = ipaddress.IPv6Address("::1")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries and routes to, if it is one of those forms.

    ISATAP is not here: its IPv4 address is a tunnel end point behind a routed IPv6 prefix,
    so both must pass (see ``_isatap_ipv4``).
    """
    if address in (_UNSPECIFIED, _LOOPBACK):
        return None
    value = int(address)
    if any(address in net for net in (_MAPPED, _TRANSLATED, _COMPATIBLE, _NAT64)):
        return ipaddress.IPv4Address(value & 0xFFFF_FFFF)
    if address in _SIXTOFOUR:
        return ipaddress.IPv4Address((value >> 80) & 0xFFFF_FFFF)
    return None


def _isatap_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    value = int(address)
    if (value >> 32) & 0xFFFF_FFFF in _ISATAP_IIDS:
        return ipaddress.IPv4Address(value & 0xFFFF_FFFF)
    return None


def refusal_reason(address: IPAddress, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """Why a connection to ``address`` is refused (a short phrase), or ``None`` if allowed."""
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        address = ipaddress.IPv6Address(address.compressed.split("%", 1)[0])
    if any(address in network for network in allowed):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            reason = refusal_reason(inner, allowed)
            return None if reason is None else f"embeds {inner}, {reason}"
        inner = _isatap_ipv4(address)
        if inner is not None:
            reason = refusal_reason(inner, allowed)
            if reason is not None:
                return f"ISATAP address embedding {inner}, {reason}"
    for network, reason in _REFUSED:
        if address in network:
            return reason
    if not address.is_global or address.is_multicast or address.is_reserved:
        return "not a global unicast address"
    return None


def check_addresses(addresses: Iterable[IPAddress], allowed: Sequence[IPNetwork] = ()) -> None:
    """Raise ``DestinationRefused`` if any address is refused (a mixed answer set refuses all).

    An empty set is refused too: there is nothing vetted to connect to.
    """
    seen = False
    for address in addresses:
        seen = True
        reason = refusal_reason(address, allowed)
        if reason is not None:
            raise DestinationRefused(f"{address} is refused: {reason}")
    if not seen:
        raise DestinationRefused("the host resolved to no address")


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a URL host names by itself, or ``None`` for a host name.

    Accepts what ``getaddrinfo`` would turn into an address without DNS, so the legacy IPv4
    spellings count as literals: ``2130706433``, ``0x7f000001``, ``017700000001``, ``127.1``
    and ``0177.0.0.1`` all give 127.0.0.1. A single trailing dot is ignored (``127.0.0.1.``).
    IPv6 hosts come without brackets, as yarl's ``URL.host`` gives them.
    """
    text = host[:-1] if host.endswith(".") else host
    if not text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if ":" in text:
        return None
    try:
        # AI_NUMERICHOST: never a DNS query, so this is safe to call on the event loop.
        infos = socket.getaddrinfo(
            text,
            None,
            family=socket.AF_INET,
            type=socket.SOCK_STREAM,
            flags=socket.AI_NUMERICHOST,
        )
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return ipaddress.IPv4Address(infos[0][4][0])

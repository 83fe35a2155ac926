"""④ Webhook URLs: checked at registration, parsed the same way (yarl) when sent.

``validate_url`` is the registration-time check (a 422 with a clear reason). It refuses IP
literals the SSRF guard would refuse, and the few names whose addresses are known without DNS
(``localhost``, cloud metadata names), but it does no DNS: the boundary is the connect-time
check on the resolved address, so a URL that passes here can still be refused when sent.
"""

from __future__ import annotations

from collections.abc import Sequence

from yarl import URL

from app.delivery.ssrf import IPNetwork, parse_ip_literal, refusal_reason
from app.errors import InvalidWebhook

MAX_URL_LENGTH = 2048

# Names whose addresses are fixed without asking DNS (RFC 6761 localhost, cloud metadata).
_LOOPBACK_NAMES: tuple[str, ...] = ("127.0.0.1", "::1")
_METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "metadata.goog"})


def validate_url(url: str, allow_http: bool, allowed_networks: Sequence[IPNetwork] = ()) -> str:
    """The normalized URL to store, or ``InvalidWebhook("url", reason)``.

    Absolute ``https`` (or ``http`` when ``allow_http``), a host, no user info, no fragment,
    no whitespace, control characters or backslashes, a port in 1..65535, and no IP literal
    (in any spelling getaddrinfo accepts, e.g. ``2130706433``) that the guard refuses unless
    it lies in ``allowed_networks``. Legacy IPv4 spellings are stored in canonical form.
    """
    if len(url) > MAX_URL_LENGTH:
        raise InvalidWebhook("url", f"must be at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise InvalidWebhook("url", "must not contain whitespace or control characters")
    if "\\" in url:
        raise InvalidWebhook("url", "must not contain a backslash")
    try:
        parsed = URL(url)
        port = parsed.port  # yarl raises for a port it cannot read or out of 0..65535
    except (ValueError, TypeError) as exc:
        raise InvalidWebhook("url", f"is not a valid URL ({exc})") from None
    schemes = ("http", "https") if allow_http else ("https",)
    if parsed.scheme not in schemes:
        raise InvalidWebhook("url", f"scheme must be {' or '.join(schemes)}")
    if not parsed.is_absolute() or not parsed.raw_host:
        raise InvalidWebhook("url", "must be an absolute URL with a host")
    if parsed.raw_user is not None or parsed.raw_password is not None:
        raise InvalidWebhook("url", "must not contain user info (user:password@)")
    if parsed.raw_fragment:
        raise InvalidWebhook("url", "must not contain a fragment (#...)")
    if port is None or not 1 <= port <= 65535:
        raise InvalidWebhook("url", "port must be between 1 and 65535")
    try:
        _check_known_name(parsed, allowed_networks)
        parsed = check_literal_host(parsed, allowed_networks)
    except ValueError as exc:
        raise InvalidWebhook("url", str(exc)) from None
    return str(parsed)


def check_literal_host(url: URL, allowed_networks: Sequence[IPNetwork]) -> URL:
    """Raise ``ValueError(reason)`` if the URL's host is an IP literal the guard refuses;
    return the URL with such a literal in canonical form (``127.1`` -> ``127.0.0.1``).

    Called before every send as well: aiohttp does not call the resolver for IP literals,
    and aiohttp 3.14 rejects non-canonical IPv4 spellings, so an allowed one is sent as the
    address it means (as browsers' URL parsers do).
    """
    host = url.host or ""
    address = parse_ip_literal(host)
    if address is None:
        return url
    reason = refusal_reason(address, allowed_networks)
    if reason is not None:
        raise ValueError(f"host {address} is refused: {reason}")
    canonical = str(address)
    return url if host == canonical else url.with_host(canonical)


def _check_known_name(url: URL, allowed_networks: Sequence[IPNetwork]) -> None:
    """Refuse names whose addresses are fixed without DNS when none of them is allowed.

    ``localhost`` may resolve to 127.0.0.1, ::1 or both depending on /etc/hosts, so it passes
    here if either is allowed; the resolver then decides on the real answer.
    """
    name = (url.host or "").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        known = _LOOPBACK_NAMES
    elif name in _METADATA_NAMES:
        known = ("169.254.169.254",)
    else:
        return
    reasons = []
    for text in known:
        address = parse_ip_literal(text)
        assert address is not None
        reason = refusal_reason(address, allowed_networks)
        if reason is None:
            return
        reasons.append(f"{address}: {reason}")
    raise ValueError(f"host {name} is refused ({'; '.join(reasons)})")

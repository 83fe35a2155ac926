"""Pure delivery policy: status verdicts, Retry-After, the SSRF address policy, URL checks.

The address and URL tables are RELIABILITY.md rows 1-6 and 10-12 as data.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest

from app.delivery import (
    DestinationRefused,
    FailureKind,
    Verdict,
    check_addresses,
    classify,
    parse_retry_after,
    refusal_reason,
    validate_url,
)
from app.delivery.ssrf import IPNetwork, parse_ip_literal
from app.errors import InvalidWebhook

NOW = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
MAX = timedelta(hours=6)
LOOPBACK_V4 = (ipaddress.ip_network("127.0.0.0/8"),)


# --- classify -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (200, {}, Verdict(None)),
        (201, {}, Verdict(None)),
        (204, {}, Verdict(None)),
        (299, {}, Verdict(None)),
        (100, {}, Verdict(FailureKind.HTTP_STATUS)),
        (199, {}, Verdict(FailureKind.HTTP_STATUS)),
        (300, {}, Verdict(FailureKind.REDIRECT)),
        (301, {"Location": "http://127.0.0.1/"}, Verdict(FailureKind.REDIRECT)),
        (302, {}, Verdict(FailureKind.REDIRECT)),
        (307, {"Location": "http://169.254.169.254/"}, Verdict(FailureKind.REDIRECT)),
        (308, {}, Verdict(FailureKind.REDIRECT)),
        (400, {}, Verdict(FailureKind.HTTP_STATUS)),
        (404, {}, Verdict(FailureKind.HTTP_STATUS)),
        (410, {}, Verdict(FailureKind.GONE)),
        (429, {}, Verdict(FailureKind.HTTP_STATUS)),
        (429, {"Retry-After": "120"}, Verdict(FailureKind.HTTP_STATUS, timedelta(seconds=120))),
        (429, {"retry-after": "120"}, Verdict(FailureKind.HTTP_STATUS, timedelta(seconds=120))),
        (
            503,
            {"Retry-After": "Thu, 15 Jan 2026 12:05:00 GMT"},
            Verdict(FailureKind.HTTP_STATUS, timedelta(minutes=5)),
        ),
        (503, {"Retry-After": "99999999"}, Verdict(FailureKind.HTTP_STATUS, MAX)),
        (503, {"Retry-After": "-5"}, Verdict(FailureKind.HTTP_STATUS)),
        # Retry-After means nothing on other statuses.
        (500, {"Retry-After": "120"}, Verdict(FailureKind.HTTP_STATUS)),
        (502, {}, Verdict(FailureKind.HTTP_STATUS)),
        (301, {"Retry-After": "120"}, Verdict(FailureKind.REDIRECT)),
        (200, {"Retry-After": "120"}, Verdict(None)),
        (599, {}, Verdict(FailureKind.HTTP_STATUS)),
    ],
)
def test_classify(status: int, headers: dict[str, str], expected: Verdict) -> None:
    assert classify(status, headers, NOW, MAX) == expected


# --- parse_retry_after --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("0", timedelta(0)),
        ("120", timedelta(seconds=120)),
        (" 120 ", timedelta(seconds=120)),
        ("21600", MAX),  # exactly the clamp
        ("21601", MAX),
        ("99999999", MAX),
        ("9" * 40, MAX),  # too big for timedelta: clamped, not an overflow
        ("-5", None),
        ("+5", None),
        ("1.5", None),
        ("12abc", None),
        ("garbage", None),
        ("١٢٠", None),  # Arabic-Indic digits are not delay-seconds
        ("Thu, 15 Jan 2026 12:02:00 GMT", timedelta(minutes=2)),  # IMF-fixdate
        ("Thursday, 15-Jan-26 12:02:00 GMT", timedelta(minutes=2)),  # RFC 850
        ("Thu Jan 15 12:02:00 2026", timedelta(minutes=2)),  # asctime
        ("Thu, 15 Jan 2026 12:02:00 -0000", timedelta(minutes=2)),
        ("Thu, 15 Jan 2026 12:00:00 GMT", timedelta(0)),  # now
        ("Thu, 15 Jan 2026 11:59:00 GMT", None),  # in the past: ignored
        ("Fri, 16 Jan 2026 12:00:00 GMT", MAX),  # a day away: clamped
        ("Thu, 32 Jan 2026 12:00:00 GMT", None),
        ("Thu, 15 Jan 99999 12:00:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: timedelta | None) -> None:
    assert parse_retry_after(value, NOW, MAX) == expected


def test_parse_retry_after_clamps_to_the_given_max() -> None:
    assert parse_retry_after("120", NOW, timedelta(seconds=60)) == timedelta(seconds=60)


# --- the SSRF address policy --------------------------------------------------------------

REFUSED_ADDRESSES = [
    # row 1: loopback
    "127.0.0.1",
    "127.255.255.254",
    "::1",
    # row 2: metadata services
    "169.254.169.254",
    "fd00:ec2::254",
    "168.63.129.16",
    # row 4: IPv4 inside IPv6
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "::7f00:1",
    "::ffff:0:7f00:1",
    "::5efe:7f00:1",
    "fe80::200:5efe:7f00:1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    # row 5: NAT64, 6to4, Teredo
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::8.8.8.8",
    "2002:7f00:1::1",
    "2002:a00:1::1",
    "2001::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    # row 6: every private, special or reserved range
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.0.1",
    "192.168.255.255",
    "100.64.0.1",
    "100.127.255.254",
    "0.0.0.0",
    "0.1.2.3",
    "169.254.0.1",
    "192.0.0.8",
    "192.0.2.1",
    "198.18.0.1",
    "198.19.255.254",
    "198.51.100.7",
    "203.0.113.9",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "fc00::1",
    "fdff:ffff::1",
    "fe80::1",
    "fe80::1%eth0",
    "febf::1",
    "fec0::1",
    "ff02::1",
    "100::1",
    "2001:db8::1",
]

ALLOWED_ADDRESSES = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.215.14",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above CGNAT
    "172.15.255.255",
    "172.32.0.0",
    "198.17.255.255",
    "198.20.0.0",
    "223.255.255.254",
    "2606:4700:4700::1111",
    "2a00:1450:4001:81c::200e",
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "::ffff:8.8.8.8",
    "2002:808:808::1",  # 6to4 of 8.8.8.8
]


@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
def test_address_refused_by_default(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ALLOWED_ADDRESSES)
def test_global_address_allowed(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("address", "allowed", "expected_allowed"),
    [
        ("127.0.0.1", LOOPBACK_V4, True),
        ("127.9.9.9", LOOPBACK_V4, True),
        ("::ffff:127.0.0.1", LOOPBACK_V4, True),  # judged by the embedded address
        ("::1", LOOPBACK_V4, False),  # an IPv4 network does not allow IPv6 loopback
        ("10.0.0.1", LOOPBACK_V4, False),
        ("169.254.169.254", LOOPBACK_V4, False),
        ("10.1.2.3", (ipaddress.ip_network("10.1.0.0/16"),), True),
        ("10.2.0.1", (ipaddress.ip_network("10.1.0.0/16"),), False),
        ("fd12::1", (ipaddress.ip_network("fd12::/16"),), True),
    ],
)
def test_allowed_networks(
    address: str, allowed: tuple[IPNetwork, ...], expected_allowed: bool
) -> None:
    assert (refusal_reason(ipaddress.ip_address(address), allowed) is None) is expected_allowed


@pytest.mark.parametrize(
    ("addresses", "refused"),
    [
        (["93.184.215.14"], False),
        (["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"], False),
        (["93.184.215.14", "::1"], True),  # row 7: public A + loopback AAAA refuses the host
        (["8.8.8.8", "10.0.0.1", "1.1.1.1"], True),  # a mixed A set too
        ([], True),  # nothing vetted to connect to
    ],
)
def test_answer_set_policy(addresses: list[str], refused: bool) -> None:
    ips = [ipaddress.ip_address(a) for a in addresses]
    if refused:
        with pytest.raises(DestinationRefused):
            check_addresses(ips)
    else:
        check_addresses(ips)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),  # row 3
        ("0x7f000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("::1", "::1"),
        ("::ffff:7f00:1", "::ffff:7f00:1"),
        ("example.com", None),
        ("1.2.3.4.example.com", None),
        ("08.0.0.1", None),  # not octal, not a name getaddrinfo treats as numeric
        ("", None),
    ],
)
def test_parse_ip_literal(host: str, expected: str | None) -> None:
    parsed = parse_ip_literal(host)
    assert (None if parsed is None else str(parsed)) == expected


# --- validate_url -------------------------------------------------------------------------

REFUSED_URLS = [
    # row 1
    ("http://127.0.0.1:9042/", "loopback"),
    ("http://localhost/", "loopback"),
    ("http://LOCALHOST./", "loopback"),
    ("http://api.localhost/", "loopback"),
    ("http://[::1]/", "loopback"),
    # row 2
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
    ("http://[fd00:ec2::254]/", "cloud metadata"),
    ("http://168.63.129.16/", "cloud metadata"),
    ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata"),
    # row 3
    ("http://2130706433/", "loopback"),
    ("http://0x7f000001/", "loopback"),
    ("http://017700000001/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://0177.0.0.1/", "loopback"),
    # row 4
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[::ffff:7f00:1]/", "loopback"),
    ("http://[::7f00:1]/", "loopback"),
    ("http://[::ffff:0:7f00:1]/", "loopback"),
    ("http://[::5efe:7f00:1]/", "loopback"),
    # row 5
    ("http://[64:ff9b::7f00:1]/", "loopback"),
    ("http://[64:ff9b::a9fe:a9fe]/", "cloud metadata"),
    ("http://[2002:7f00:1::1]/", "loopback"),
    ("http://[2001::1]/", "Teredo"),
    # row 6
    ("http://10.0.0.1/", "private network"),
    ("http://172.16.0.1/", "private network"),
    ("http://192.168.1.1/", "private network"),
    ("http://100.64.0.1/", "carrier-grade"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://0.1.2.3/", "unspecified"),
    ("http://198.18.0.1/", "benchmarking"),
    ("http://224.0.0.1/", "multicast"),
    ("http://255.255.255.255/", "broadcast"),
    ("http://[fc00::1]/", "unique local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fec0::1]/", "site-local"),
    # row 10: schemes
    ("file:///etc/passwd", "scheme must be"),
    ("gopher://example.com/", "scheme must be"),
    ("ftp://example.com/", "scheme must be"),
    ("data:text/plain,hi", "scheme must be"),
    ("ws://example.com/", "scheme must be"),
    ("wss://example.com/", "scheme must be"),
    ("javascript:alert(1)", "scheme must be"),
    ("//example.com/hook", "scheme must be"),
    ("example.com/hook", "scheme must be"),
    ("/hook", "scheme must be"),
    ("", "scheme must be"),
    # row 11: userinfo, fragments, backslash, whitespace, CRLF
    ("http://evil.com@127.0.0.1/", "user info"),
    ("http://user:pass@example.com/", "user info"),
    ("http://user@example.com/", "user info"),
    ("http://127.0.0.1#@evil.com", "fragment"),
    ("http://example.com/#frag", "fragment"),
    ("http://127.0.0.1\\@evil.com", "backslash"),
    ("http://example.com\\hook", "backslash"),
    ("http://exa mple.com/", "whitespace or control"),
    ("http://example.com/ hook", "whitespace or control"),
    (" http://example.com/", "whitespace or control"),
    ("http://example.com/\r\nX-Injected: 1", "whitespace or control"),
    ("http://example.com/\nhook", "whitespace or control"),
    ("http://example.com/\thook", "whitespace or control"),
    ("http://example.com/\x00", "whitespace or control"),
    # row 12: ports
    ("http://example.com:0/", "port must be"),
    ("http://example.com:65536/", "Port out of range"),
    ("http://example.com:99999/", "Port out of range"),
    ("http://example.com:-1/", "Port out of range"),
    ("http://example.com:abc/", "port can't"),
    # no host
    ("http:///hook", "absolute URL with a host"),
    ("http://:80/", "host is required"),
    ("http://[::1/", "Invalid IPv6"),
    ("http://" + "a" * 2050 + ".com/", "at most 2048"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED_URLS)
def test_validate_url_refuses(url: str, reason: str) -> None:
    with pytest.raises(InvalidWebhook) as caught:
        validate_url(url, allow_http=True)
    assert caught.value.field == "url"
    assert reason in caught.value.message


@pytest.mark.parametrize(
    "url",
    ["http://example.com/hook", "http://93.184.215.14/", "http://[2606:4700:4700::1111]/"],
)
def test_validate_url_refuses_plain_http_when_https_only(url: str) -> None:
    with pytest.raises(InvalidWebhook, match="scheme must be https"):
        validate_url(url, allow_http=False)
    assert validate_url(url, allow_http=True)


@pytest.mark.parametrize(
    ("url", "allow_http", "allowed", "expected"),
    [
        ("https://example.com/hook", False, (), "https://example.com/hook"),
        ("https://example.com", False, (), "https://example.com"),
        ("HTTPS://Example.COM/Hook?a=1&b=2", False, (), "https://example.com/Hook?a=1&b=2"),
        ("https://example.com:8443/h", False, (), "https://example.com:8443/h"),
        ("https://example.com:1/h", False, (), "https://example.com:1/h"),
        ("https://example.com:65535/h", False, (), "https://example.com:65535/h"),
        ("https://example.com:22/h", False, (), "https://example.com:22/h"),  # row 12: IP rule
        ("https://bücher.de/hook", False, (), "https://xn--bcher-kva.de/hook"),
        ("https://93.184.215.14/hook", False, (), "https://93.184.215.14/hook"),
        ("https://[2606:4700:4700::1111]/", False, (), "https://[2606:4700:4700::1111]/"),
        ("http://example.com/hook", True, (), "http://example.com/hook"),
        # Allowed networks let local development register loopback receivers.
        ("http://127.0.0.1:9000/hook", True, LOOPBACK_V4, "http://127.0.0.1:9000/hook"),
        ("http://localhost:9000/hook", True, LOOPBACK_V4, "http://localhost:9000/hook"),
        ("http://2130706433:9000/", True, LOOPBACK_V4, "http://127.0.0.1:9000/"),
        ("http://127.1:9000/", True, LOOPBACK_V4, "http://127.0.0.1:9000/"),
    ],
)
def test_validate_url_accepts(
    url: str, allow_http: bool, allowed: tuple[IPNetwork, ...], expected: str
) -> None:
    assert validate_url(url, allow_http, allowed) == expected

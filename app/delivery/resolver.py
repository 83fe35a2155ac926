"""④ An aiohttp resolver that returns only addresses the SSRF guard allows.

aiohttp connects to exactly the addresses its resolver returns, and TLS still verifies the
URL's host name (``server_hostname`` is the original host). So checking here pins the
connection to the vetted address: a DNS answer that changes between check and connect
(rebinding) cannot reach a refused address, because there is no second lookup.

aiohttp (3.14) does not call the resolver for IP-literal hosts (anything with a ``:`` or made
only of digits and dots); ``AiohttpSender.send`` checks those before the request.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from app.delivery.ssrf import IPNetwork, check_addresses


class GuardedResolver(AbstractResolver):
    """Resolve with ``getaddrinfo`` (in a thread), then refuse the host unless EVERY address
    is allowed; raises ``DestinationRefused`` (a mixed answer set is refused as a whole)."""

    def __init__(
        self, allowed_networks: Sequence[IPNetwork] = (), inner: AbstractResolver | None = None
    ) -> None:
        self._allowed = tuple(allowed_networks)
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:  # created here: ThreadedResolver binds the running loop
            self._inner = ThreadedResolver()
        results = await self._inner.resolve(host, port, family)
        check_addresses((ipaddress.ip_address(r["host"]) for r in results), self._allowed)
        return results

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()

"""② Accounts: who owns webhooks, API keys, events and deliveries.

Every webhook, key, event and delivery belongs to exactly one account, and nothing crosses
accounts: matching, reads, lists and cursors are all scoped by it. A single-team install never
names one: everything without an account belongs to ``default``, which always exists and
cannot be disabled.

An event names its account in the Kafka header ``hookstream-account`` (the account id as
UTF-8). A header, not the payload: the public event format stays exactly the docs' shape, and
the message key stays free for the producer's own partitioning. No header means ``default``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import orjson

from app.errors import InvalidEvent

DEFAULT_ACCOUNT = "default"
ACCOUNT_HEADER = "hookstream-account"

# Generated ids are acct_ + hex; an operator may also pick a readable id ("acme"). Never a
# "." or "/": an account id prefixes event keys in the store (``event_key``).
_ACCOUNT_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,62}$")


def new_account_id() -> str:
    return "acct_" + secrets.token_hex(8)


def is_account_id(text: str) -> bool:
    return bool(_ACCOUNT_ID.fullmatch(text))


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    name: str
    active: bool
    created_at: datetime
    max_webhooks: int | None = None  # None: the setting api.max_webhooks
    disabled_reason: str | None = None


def event_account(headers: Mapping[str, bytes] | Iterable[tuple[str, bytes | None]]) -> str:
    """The account an event belongs to, from its Kafka headers; ``default`` without one.

    Raises ``InvalidEvent("bad_account", …)`` for a header that is not a valid account id
    (the match step dead-letters such an event: it must not fall back to ``default``).
    """
    raw: bytes | None
    if isinstance(headers, dict):  # the match step's case: a plain dict, one lookup
        raw = headers.get(ACCOUNT_HEADER)
    else:
        items = headers.items() if isinstance(headers, Mapping) else headers
        raw = next((value for key, value in items if key == ACCOUNT_HEADER), None)
    if raw is None:
        return DEFAULT_ACCOUNT
    try:
        text: str = raw.decode()
    except UnicodeDecodeError:
        raise InvalidEvent("bad_account", f"the {ACCOUNT_HEADER} header is not UTF-8") from None
    if not is_account_id(text):
        raise InvalidEvent("bad_account", f"{text[:80]!r} is not an account id")
    return text


def event_key(account_id: str, event_id: str) -> str:
    """The store key of an event: two accounts may use the same event id.

    The default account's events keep their bare id (so rows written before accounts existed
    stay readable); another account's are ``<account>.<event id>``, unambiguous because an
    event id never contains a ".".
    """
    return event_id if account_id == DEFAULT_ACCOUNT else f"{account_id}.{event_id}"


def account_to_json(account: Account) -> bytes:
    """The value published on the compacted accounts topic."""
    return orjson.dumps(
        {
            "id": account.id,
            "name": account.name,
            "active": account.active,
            "created_at": account.created_at,
            "max_webhooks": account.max_webhooks,
            "disabled_reason": account.disabled_reason,
        }
    )


def account_from_json(raw: bytes) -> Account:
    obj = orjson.loads(raw)
    return Account(
        id=obj["id"],
        name=obj["name"],
        active=bool(obj["active"]),
        created_at=datetime.fromisoformat(obj["created_at"]),
        max_webhooks=obj.get("max_webhooks"),
        disabled_reason=obj.get("disabled_reason"),
    )


class Standing(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"
    UNKNOWN = "unknown"


class AccountDirectory:
    """The accounts one process knows (a worker's, fed like its webhook index). Pure.

    The default account is always active, known or not: a single-team install never
    creates it.
    """

    def __init__(self, accounts: Iterable[Account] = ()) -> None:
        self._by_id = {account.id: account for account in accounts}
        self._missing: dict[str, float] = {}  # id -> when the store last said "no such"

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, account_id: str) -> Account | None:
        return self._by_id.get(account_id)

    def put(self, account: Account) -> None:
        self._by_id[account.id] = account
        self._missing.pop(account.id, None)

    def note_missing(self, account_id: str, now: float) -> None:
        """Remember that the source of truth has no such account (see ``checked_lately``)."""
        if len(self._missing) > 10_000:  # a flood of made-up ids must not grow this forever
            self._missing.clear()
        self._missing[account_id] = now

    def checked_lately(self, account_id: str, now: float, within: float) -> bool:
        """Whether the store said "no such account" less than ``within`` seconds ago: events
        naming an unknown account then go to the dead topic without asking it again."""
        at = self._missing.get(account_id)
        return at is not None and now - at < within

    def replace_all(self, accounts: Iterable[Account]) -> None:
        self._by_id = {account.id: account for account in accounts}

    def standing(self, account_id: str) -> Standing:
        if account_id == DEFAULT_ACCOUNT:
            return Standing.ACTIVE
        account = self._by_id.get(account_id)
        if account is None:
            return Standing.UNKNOWN
        return Standing.ACTIVE if account.active else Standing.DISABLED

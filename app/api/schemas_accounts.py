"""⑥ The public shapes of accounts and API keys (the admin API)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.accounts import Account
from app.events import format_timestamp
from app.store.api_keys import StoredKey

AccountIdField = Annotated[
    str,
    Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9][a-z0-9_\-]{0,62}$",
        description="Lowercase letters, digits, `_` and `-` (generated as `acct_…` if omitted).",
        examples=["acme"],
    ),
]
Name = Annotated[str, Field(min_length=1, max_length=200, examples=["Acme Corp"])]
Reason = Annotated[str, Field(min_length=1, max_length=500)]


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class AccountCreate(_Request):
    name: Name
    id: AccountIdField | None = None
    max_webhooks: int | None = Field(
        None, ge=1, le=100_000, description="Webhooks allowed (default: the server's setting)."
    )


class AccountUpdate(_Request):
    name: Name | None = None
    max_webhooks: int | None = Field(None, ge=1, le=100_000)


class AccountDisable(_Request):
    reason: Reason = "disabled by an operator"


class AccountPublic(BaseModel):
    id: str
    name: str
    active: bool
    disabled_reason: str | None
    max_webhooks: int = Field(description="Webhooks the account may have.")
    created_at: str

    @classmethod
    def of(cls, account: Account, default_max: int) -> AccountPublic:
        return cls(
            id=account.id,
            name=account.name,
            active=account.active,
            disabled_reason=account.disabled_reason,
            max_webhooks=account.max_webhooks or default_max,
            created_at=format_timestamp(account.created_at),
        )


class AccountList(BaseModel):
    accounts: list[AccountPublic]


class KeyCreate(_Request):
    name: Name = "default"


class KeyPublic(BaseModel):
    """A key as lists show it: never the key, only its first characters."""

    id: str = Field(examples=["key_3f2a9c1b7d4e5f60"])
    account_id: str
    name: str
    prefix: str = Field(description="The key's first 8 characters, to tell keys apart.")
    created_at: str

    @classmethod
    def of(cls, stored: StoredKey) -> KeyPublic:
        return cls(
            id=stored.id,
            account_id=stored.account_id,
            name=stored.name,
            prefix=stored.prefix,
            created_at=format_timestamp(stored.created_at),
        )


class KeyCreated(KeyPublic):
    key: str = Field(description="The key itself: shown this once, stored only as a hash.")


class KeyList(BaseModel):
    keys: list[KeyPublic]

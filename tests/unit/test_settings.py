"""Settings: durations, the retry schedule, comma lists and nested groups, from the environment."""

from __future__ import annotations

import ipaddress
import os
from datetime import timedelta

import pytest

from app.errors import SettingsError
from app.settings import SEED_EVENT_TYPES, Settings, format_duration, load_settings, parse_duration

S = timedelta(seconds=1)
MS = timedelta(milliseconds=1)
SEED_SCHEDULE = (timedelta(0), 30 * S, 300 * S, 1800 * S, 7200 * S)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No HOOKSTREAM_ variable from the machine running the tests leaks into a case."""
    for name in list(os.environ):
        if name.upper().startswith("HOOKSTREAM_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("0s", timedelta(0)),
        ("30", 30 * S),
        ("30s", 30 * S),
        ("5m", 300 * S),
        ("30m", 1800 * S),
        ("2h", 7200 * S),
        ("1d", 86400 * S),
        ("250ms", 250 * MS),
        ("1.5s", 1500 * MS),
        ("0.5h", 1800 * S),
        (" 30s ", 30 * S),
        ("30 s", 30 * S),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", " ", "s", "-30s", "+30s", "30x", "30S", "5 minutes", "1h30m", "1e3", "0x10", ".5s"]
)
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("delay", "text"),
    [
        (timedelta(0), "0ms"),
        (30 * S, "30s"),
        (90 * S, "90s"),
        (300 * S, "5m"),
        (1800 * S, "30m"),
        (7200 * S, "2h"),
        (25 * 3600 * S, "25h"),
        (86400 * S, "1d"),
        (1500 * MS, "1500ms"),
        (250 * MS, "250ms"),
    ],
)
def test_format_duration(delay: timedelta, text: str) -> None:
    assert format_duration(delay) == text
    assert parse_duration(text) == delay


def test_format_duration_names_the_seeds_retry_topics() -> None:
    assert [format_duration(d) for d in SEED_SCHEDULE[1:]] == ["30s", "5m", "30m", "2h"]


# -- the retry schedule -------------------------------------------------------------------------


def test_the_default_schedule_is_the_seeds() -> None:
    settings = load_settings()
    assert settings.retry_schedule == SEED_SCHEDULE
    assert settings.max_attempts == 5


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0,30s,5m,30m,2h", SEED_SCHEDULE),
        (" 0 , 30s ,5m, 30m , 2h ", SEED_SCHEDULE),
        ("0,30,300,1800,7200", SEED_SCHEDULE),
        ("0,30s,5m,30m,2h,", SEED_SCHEDULE),
        ("0", (timedelta(0),)),
        ("0,1s,250ms", (timedelta(0), S, 250 * MS)),
    ],
)
def test_retry_schedule_from_the_environment(
    clean_env: pytest.MonkeyPatch, value: str, expected: tuple[timedelta, ...]
) -> None:
    clean_env.setenv("HOOKSTREAM_RETRY_SCHEDULE", value)
    settings = load_settings()
    assert settings.retry_schedule == expected
    assert settings.max_attempts == len(expected)


@pytest.mark.parametrize(
    "value",
    [
        "30s,5m",  # does not start with 0
        "5s",
        "0,-30s",  # negative
        "-1,30s",
        "0,0",  # a retry that is not later
        "0,30s,0s",
        "",  # no attempt at all
        " , ",
        "garbage",
        "0,30s,soon",
        "0;30s;5m",
    ],
)
def test_an_invalid_retry_schedule_names_the_variable(
    clean_env: pytest.MonkeyPatch, value: str
) -> None:
    clean_env.setenv("HOOKSTREAM_RETRY_SCHEDULE", value)
    with pytest.raises(SettingsError, match="HOOKSTREAM_RETRY_SCHEDULE"):
        load_settings()


# -- comma lists --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.0/8", ["127.0.0.0/8"]),
        ("127.0.0.0/8, 10.0.0.0/8,::1/128", ["127.0.0.0/8", "10.0.0.0/8", "::1/128"]),
        ("10.1.2.3", ["10.1.2.3/32"]),
        ("10.1.2.3/8", ["10.0.0.0/8"]),  # host bits are dropped, not refused
        ("fd00::/8,", ["fd00::/8"]),
        ("", []),
    ],
)
def test_allowed_networks(clean_env: pytest.MonkeyPatch, value: str, expected: list[str]) -> None:
    clean_env.setenv("HOOKSTREAM_ALLOWED_NETWORKS", value)
    networks = load_settings().allowed_networks
    assert networks == tuple(ipaddress.ip_network(n) for n in expected)


@pytest.mark.parametrize("value", ["localhost", "10.0.0.0/33", "127.0.0.0/8,nope", "::g/64"])
def test_invalid_allowed_networks_name_the_variable(
    clean_env: pytest.MonkeyPatch, value: str
) -> None:
    clean_env.setenv("HOOKSTREAM_ALLOWED_NETWORKS", value)
    with pytest.raises(SettingsError, match="HOOKSTREAM_ALLOWED_NETWORKS"):
        load_settings()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("key-one", ["key-one"]),
        ("key-one,key-two", ["key-one", "key-two"]),
        (" key-one , ,key-two,, ", ["key-one", "key-two"]),
        ("", []),
    ],
)
def test_api_keys(clean_env: pytest.MonkeyPatch, value: str, expected: list[str]) -> None:
    clean_env.setenv("HOOKSTREAM_API_KEYS", value)
    settings = load_settings()
    assert [k.get_secret_value() for k in settings.api_keys] == expected
    for key in expected:
        assert key not in repr(settings)


def test_defaults_without_any_variable() -> None:
    settings = load_settings()
    assert settings.allowed_networks == ()
    assert settings.api_keys == ()
    assert settings.event_types == SEED_EVENT_TYPES
    assert settings.kafka.partitions == 6


# -- nested groups ------------------------------------------------------------------------------


def test_a_nested_variable_sets_its_group(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HOOKSTREAM_KAFKA__PARTITIONS", "12")
    clean_env.setenv("HOOKSTREAM_KAFKA__BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    settings = load_settings()
    assert settings.kafka.partitions == 12
    assert settings.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert settings.kafka.topic_prefix == "hookstream"  # the rest of the group keeps defaults


@pytest.mark.parametrize("value", ["0", "-1", "many", "1.5"])
def test_an_invalid_nested_variable_names_it(clean_env: pytest.MonkeyPatch, value: str) -> None:
    clean_env.setenv("HOOKSTREAM_KAFKA__PARTITIONS", value)
    with pytest.raises(SettingsError, match="HOOKSTREAM_KAFKA__PARTITIONS"):
        load_settings()


def test_every_invalid_variable_is_named_at_once(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HOOKSTREAM_RETRY_SCHEDULE", "30s")
    clean_env.setenv("HOOKSTREAM_KAFKA__PARTITIONS", "0")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "HOOKSTREAM_RETRY_SCHEDULE" in str(caught.value)
    assert "HOOKSTREAM_KAFKA__PARTITIONS" in str(caught.value)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.retry_schedule = ()

"""Where the API's rate counters live: every web process must count in one place, on any host."""

import pytest

from portal import embedded


@pytest.mark.parametrize(
    ("broker", "expected"),
    [
        ("redis://broker.internal:6379/0", "redis://broker.internal:6379/15"),
        ("rediss://:secret@broker.internal:6380/3", "rediss://:secret@broker.internal:6380/15"),
        ("redis+socket:///srv/valkey/valkey.sock?virtual_host=7", "unix:///srv/valkey/valkey.sock?db=15"),
    ],
)
def test_without_cache_url_the_counters_live_on_the_brokers_server(monkeypatch, broker, expected):
    monkeypatch.delenv("CACHE_URL", raising=False)
    monkeypatch.setenv("CELERY_BROKER_URL", broker)
    assert embedded.cache_url(15) == expected


def test_cache_url_wins(monkeypatch):
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://broker.internal:6379/0")
    monkeypatch.setenv("CACHE_URL", "redis://cache.internal:6379/2")
    assert embedded.cache_url(15) == "redis://cache.internal:6379/2"


def test_the_embedded_default_is_the_embedded_valkeys_socket(monkeypatch):
    for name in ("CACHE_URL", "CELERY_BROKER_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    assert embedded.cache_url(15) == f"unix://{embedded.VALKEY_SOCKET}?db=15"

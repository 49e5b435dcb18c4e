"""The client against a service that requires API keys: the key is sent,
tenants are apart, a missing or wrong key is a clear error, and a rate
limit's 429 is waited out as its ``Retry-After`` says."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Service, binary, start
from strands.types.session import Session, SessionType

from strands_session_backend import (
    SessionBackendError,
    SessionBackendRepository,
    SessionBackendStorage,
)


def mint(tenant: str) -> dict[str, str]:
    """A key minted by the binary, as an operator would."""
    out = subprocess.run(
        [binary(), "keys", "new", "--tenant", tenant, "--json"], check=True, capture_output=True, text=True
    )
    minted: dict[str, str] = json.loads(out.stdout)
    return minted


@pytest.fixture(scope="module")
def keys() -> dict[str, dict[str, str]]:
    return {"a": mint("team-a"), "b": mint("team-b")}


@pytest.fixture(scope="module")
def operator() -> dict[str, str]:
    """An operator's metrics key (it reads the service-wide counters)."""
    return mint("prometheus")


@pytest.fixture(scope="module")
def keyed(
    tmp_path_factory: pytest.TempPathFactory, keys: dict[str, dict[str, str]], operator: dict[str, str]
) -> Iterator[Service]:
    """A service (SQLite) with a keys file, a metrics key and a rate limit of 5 requests a second."""
    workdir: Path = tmp_path_factory.mktemp("keyed")
    keys_file = workdir / "keys"
    keys_file.write_text("".join(f"{k['tenant']} {k['hash']}\n" for k in keys.values()))
    running = start(
        f"sqlite://{workdir / 'sessions.db'}?mode=rwc",
        "sqlite",
        workdir,
        SESSION_BACKEND_AUTH__KEYS_FILE=str(keys_file),
        SESSION_BACKEND_METRICS__KEYS=f"prometheus {operator['hash']}",
        SESSION_BACKEND_RATE_LIMIT__REQUESTS_PER_SECOND="5",
        SESSION_BACKEND_RATE_LIMIT__BURST="5",
    )
    yield running
    running.process.terminate()
    running.process.wait(timeout=20)


Keys = dict[str, dict[str, str]]


def test_the_key_is_sent_and_tenants_are_apart(keyed: Service, keys: Keys, sid: str) -> None:
    with (
        SessionBackendRepository(keyed.url, keys["a"]["key"]) as a,
        SessionBackendRepository(keyed.url, keys["b"]["key"]) as b,
    ):
        a.create_session(Session(session_id=sid, session_type=SessionType.AGENT))
        read = a.read_session(sid)
        assert read is not None and read.session_id == sid
        assert b.read_session(sid) is None, "another tenant's session does not exist for b"
        # The same id is free in b's tenant.
        b.create_session(Session(session_id=sid, session_type=SessionType.AGENT))
        assert [s.session_id for s in b.list_sessions()] == [sid]


@pytest.mark.parametrize("key", [None, "sbk_" + "0" * 64, "not-a-key"])
def test_a_missing_or_wrong_key_is_a_clear_error(keyed: Service, key: str | None, sid: str) -> None:
    with SessionBackendRepository(keyed.url, key) as repo, pytest.raises(SessionBackendError) as raised:
        repo.read_session(sid)
    assert raised.value.status == 401
    assert raised.value.kind == "UnauthorizedError"


def test_storage_sends_the_key(keyed: Service, keys: Keys, sid: str) -> None:
    async def scenario() -> None:
        a = SessionBackendStorage(keyed.url, keys["a"]["key"])
        b = SessionBackendStorage(keyed.url, keys["b"]["key"])
        await a.write(f"{sid}/snapshot.json", b"a's")
        assert await a.read(f"{sid}/snapshot.json") == b"a's"
        assert await b.read(f"{sid}/snapshot.json") is None
        await a.aclose()
        await b.aclose()

    asyncio.run(scenario())


def test_rate_limited_calls_wait_as_retry_after_says(
    keyed: Service, keys: Keys, operator: dict[str, str], sid: str
) -> None:
    with SessionBackendRepository(keyed.url, keys["a"]["key"], retries=5) as repo:
        repo.create_session(Session(session_id=sid, session_type=SessionType.AGENT))
        # Twice the burst in a row: some are answered 429 and retried.
        for _ in range(10):
            assert repo.read_session(sid) is not None
    as_operator = {"Authorization": f"Bearer {operator['key']}"}
    counted = httpx.get(f"{keyed.url}/health/metrics", headers=as_operator).json()["requests_by_status"]
    assert counted.get("429", 0) > 0, f"the limit was never hit: {counted}"

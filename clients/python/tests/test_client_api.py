"""The client's own API beyond the SDK's: configuration from the environment, a wrong base
URL told apart, one exception class for each way a call fails (each still the SDK's
exception), and a session's metadata, time to live and ETag."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from conftest import start
from strands import Agent
from strands.types.exceptions import SessionException, StorageError
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType
from test_auth import mint

from strands_session_backend import (
    ConflictError,
    InvalidRequestError,
    LeaseHeldError,
    NotFoundError,
    PreconditionFailedError,
    SessionBackendError,
    SessionBackendRepository,
    SessionBackendSessionManager,
    SessionBackendStorage,
    SessionBackendStorageError,
    UnauthorizedError,
    UnavailableError,
)


def test_the_url_and_key_come_from_the_environment(
    url: str, sid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSION_BACKEND_URL", url + "/")
    monkeypatch.setenv("SESSION_BACKEND_API_KEY", "sbk_from_the_environment")
    with SessionBackendRepository() as repository:
        assert repository._client.headers["authorization"] == "Bearer sbk_from_the_environment"
        repository.create_session(Session(session_id=sid, session_type=SessionType.AGENT))
        assert repository.read_session(sid) is not None
    monkeypatch.delenv("SESSION_BACKEND_URL")
    with pytest.raises(ValueError, match="SESSION_BACKEND_URL"):
        SessionBackendRepository()


def test_a_base_url_that_is_not_the_services_root_is_told_apart(url: str, sid: str) -> None:
    with pytest.raises(ValueError, match=f"give the service's root, `{url}`"):
        SessionBackendRepository(f"{url}/api/v1")
    with pytest.raises(ValueError, match="http"):
        SessionBackendStorage("localhost:8001")
    # A path in front of the service's routes: not "missing", but "not a route".
    with (
        SessionBackendRepository(f"{url}/session-backend") as repository,
        pytest.raises(NotFoundError, match="not a route of the Session Backend service"),
    ):
        repository.read_session(sid)

    async def read() -> None:
        await SessionBackendStorage(f"{url}/session-backend").read("notes/a")

    with pytest.raises(StorageError, match="not a route"):
        asyncio.run(read())


def test_each_failure_has_its_class_and_is_the_sdks_exception(url: str, sid: str) -> None:
    repository = SessionBackendRepository(url)
    with pytest.raises(NotFoundError) as missing:
        repository.update_agent(sid, SessionAgent(agent_id="a", state={}, conversation_manager_state={}))
    assert isinstance(missing.value, SessionException) and missing.value.status == 404
    repository.create_session(Session(session_id=sid, session_type=SessionType.AGENT))
    repository.create_agent(sid, SessionAgent(agent_id="a", state={}, conversation_manager_state={}))
    first = SessionMessage(message={"role": "user", "content": [{"text": "one"}]}, message_id=0)
    repository.create_message(sid, "a", first)
    other = SessionMessage(message={"role": "user", "content": [{"text": "two"}]}, message_id=0)
    with pytest.raises(ConflictError) as conflict:
        repository.create_message(sid, "a", other)
    assert conflict.value.status == 409 and conflict.value.kind
    with pytest.raises(InvalidRequestError):
        repository.read_session("x" * 300)
    grant = repository.acquire_lease(sid, "w1", 30)
    with pytest.raises(LeaseHeldError) as held:
        repository.acquire_lease(sid, "w2", 30)
    assert held.value.holder == "w1"
    repository.release_lease(sid, grant.token)
    repository.close()

    async def storage_calls() -> None:
        storage = SessionBackendStorage(url)
        with pytest.raises(SessionBackendStorageError) as refused:
            await storage.write(f"{sid}/../x", b"")
        assert isinstance(refused.value, InvalidRequestError) and isinstance(refused.value, StorageError)
        await storage.aclose()

    asyncio.run(storage_calls())
    with (
        SessionBackendRepository("http://127.0.0.1:9", retries=0) as unreachable,
        pytest.raises(UnavailableError) as down,
    ):
        unreachable.read_session(sid)
    assert isinstance(down.value, SessionBackendError) and down.value.status is None


def test_metadata_time_to_live_and_etags_of_a_session(url: str, sid: str, scripted: Any) -> None:
    manager = SessionBackendSessionManager(
        sid, base_url=url, session_metadata={"team": "support"}, session_ttl=3600
    )
    Agent(model=scripted([[{"text": "hi"}]]), session_manager=manager, callback_handler=None)("Hello")
    repository = manager.repository
    record = repository.describe_session(sid)
    assert record is not None and record.metadata == {"team": "support"} and record.ttl_seconds == 3600
    assert record.expires_at is not None and record.etag
    changed = repository.update_session(sid, metadata={"team": "sales"}, if_match=record.etag)
    assert changed.metadata == {"team": "sales"} and changed.etag != record.etag
    with pytest.raises(PreconditionFailedError):
        repository.update_session(sid, ttl_seconds=0, if_match=record.etag)
    assert repository.describe_session(sid).ttl_seconds == 3600  # type: ignore[union-attr]
    assert repository.update_session(sid, ttl_seconds=0).expires_at is None
    with pytest.raises(NotFoundError):
        repository.update_session(f"{sid}-missing", metadata={})
    assert repository.describe_session(f"{sid}-missing") is None
    repository.close()


def test_sessions_are_listed_with_filters(url: str, sid: str) -> None:
    with SessionBackendRepository(url) as repository:
        for n, kind in enumerate(["AGENT", "CUSTOM", "AGENT"]):
            body = {"session_id": f"{sid}-{n}", "session_type": kind}
            assert httpx.post(f"{url}/api/v1/sessions", json=body, timeout=5).status_code == 201
        mine = repository.list_sessions(id_prefix=f"{sid}-")
        assert [s.session_id for s in mine] == [f"{sid}-2", f"{sid}-1", f"{sid}-0"]
        agents = repository.list_sessions(id_prefix=sid, session_type="AGENT", page_size=1)
        assert [s.session_id for s in agents] == [f"{sid}-2", f"{sid}-0"]
        now = datetime.now(UTC)
        assert repository.list_sessions(id_prefix=sid, created_after=now) == []
        assert len(repository.list_sessions(id_prefix=sid, created_before=now)) == 3
        with pytest.raises(ValueError, match="time zone"):
            repository.list_sessions(created_after=datetime.now())
        with pytest.raises(InvalidRequestError):
            repository.list_sessions(id_prefix="a/b")


def test_storage_connections_the_service_closed_are_replaced_without_a_retry(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Kept connections the service closes (its idle timeout here, a restart or a load
    balancer in production) are replaced on the next call, with retries off."""
    workdir = tmp_path_factory.mktemp("idle")
    service = start(
        f"sqlite://{workdir / 'sessions.db'}?mode=rwc",
        "sqlite",
        workdir,
        SESSION_BACKEND_SERVER__IDLE_TIMEOUT_MS="100",
    )
    try:
        storage = SessionBackendStorage(service.url, retries=0)

        async def calls() -> list[bytes | None]:
            await asyncio.gather(*(storage.write(f"idle/{n}", b"v%d" % n) for n in range(8)))
            await asyncio.sleep(0.5)  # every kept connection is closed by now
            return list(await asyncio.gather(*(storage.read(f"idle/{n}") for n in range(8))))

        assert asyncio.run(calls()) == [b"v%d" % n for n in range(8)]
        storage.close()
    finally:
        service.process.terminate()
        service.process.wait(timeout=20)


def test_an_answer_sent_before_the_whole_body_is_the_one_raised(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A value far over the limit, or sent without a key: the service answers before reading
    it all and closes; the caller gets that answer (413, 401), not a broken pipe, at once."""
    workdir = tmp_path_factory.mktemp("early")
    minted = mint("team-early")
    keys = workdir / "keys"
    keys.write_text(f"{minted['tenant']} {minted['hash']}\n")
    service = start(
        f"sqlite://{workdir / 'sessions.db'}?mode=rwc",
        "sqlite",
        workdir,
        SESSION_BACKEND_STORAGE__MAX_VALUE_BYTES=str(1 << 20),
        SESSION_BACKEND_AUTH__KEYS_FILE=str(keys),
    )
    huge = b"x" * (40 << 20)
    try:
        storage = SessionBackendStorage(service.url, minted["key"], retries=0)
        with pytest.raises(InvalidRequestError) as too_large:
            asyncio.run(storage.write("huge", huge))
        assert too_large.value.status == 413 and isinstance(too_large.value, StorageError)
        assert asyncio.run(storage.read("huge")) is None
        anonymous = SessionBackendStorage(service.url, retries=0)
        with pytest.raises(UnauthorizedError):
            asyncio.run(anonymous.write("huge", huge))
        storage.close()
        anonymous.close()
    finally:
        service.process.terminate()
        service.process.wait(timeout=20)


class Throttling(http.server.BaseHTTPRequestHandler):
    """Answers every request 429 with Retry-After: 1, counting them."""

    seen = 0

    def do_PUT(self) -> None:
        Throttling.seen += 1
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(429)
        self.send_header("Retry-After", "1")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_cancelled_call_makes_no_further_attempt() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Throttling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        storage = SessionBackendStorage(f"http://127.0.0.1:{server.server_address[1]}", retries=5)

        async def cancelled() -> None:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(storage.write("k", b"v"), timeout=0.3)

        asyncio.run(cancelled())
        time.sleep(1.5)  # past the Retry-After the worker was waiting out
        assert Throttling.seen == 1, "the cancelled write was sent again"
        storage.close()
    finally:
        server.shutdown()
        server.server_close()


def test_a_fork_restores_in_the_sdk_up_to_the_cut(url: str, sid: str, scripted: Any) -> None:
    def agent(session_id: str, replies: list[str]) -> Agent:
        manager = SessionBackendSessionManager(session_id, base_url=url)
        model = scripted([[{"text": reply}] for reply in replies])
        return Agent(model=model, session_manager=manager, callback_handler=None)

    original = agent(sid, ["one", "two", "three"])
    for prompt in ("a", "b", "c"):
        original(prompt)
    assert len(original.messages) == 6
    repository = SessionBackendRepository(url)
    whole = repository.fork_session(sid, f"{sid}-whole")
    assert whole.session_id == f"{sid}-whole"
    cut = repository.fork_session(sid, f"{sid}-cut", agent_id="default", up_to_message_id=1)
    assert cut.session_id == f"{sid}-cut"
    assert agent(f"{sid}-whole", []).messages == original.messages
    resumed = agent(f"{sid}-cut", ["another two"])
    assert resumed.messages == original.messages[:2]
    resumed("b again")
    assert [m["content"][0]["text"] for m in resumed.messages] == ["a", "one", "b again", "another two"]
    assert len(agent(sid, []).messages) == 6, "the source is as it was"
    with pytest.raises(ConflictError):
        repository.fork_session(sid, f"{sid}-cut")
    with pytest.raises(NotFoundError):
        repository.fork_session(f"{sid}-missing", f"{sid}-x")
    repository.close()

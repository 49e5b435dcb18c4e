"""SessionBackendServer: the binary started from Python on a port it chooses, for
notebooks and tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import binary
from strands import Agent

from strands_session_backend import (
    SessionBackendError,
    SessionBackendServer,
    SessionBackendSessionManager,
)


def test_a_server_starts_on_a_port_of_its_own_and_goes_away(scripted: Any) -> None:
    with SessionBackendServer(binary=binary()) as server, SessionBackendServer(binary=binary()) as other:
        assert server.url.startswith("http://127.0.0.1:") and server.url != other.url
        manager = SessionBackendSessionManager("nb-1", base_url=server.url)
        agent = Agent(model=scripted([[{"text": "hi"}]]), session_manager=manager, callback_handler=None)
        agent("Hello")
        listed = httpx.get(f"{server.url}/api/v1/sessions/nb-1/agents/default/messages", timeout=5).json()
        assert listed["total"] == 2
        assert httpx.get(f"{other.url}/api/v1/sessions/nb-1", timeout=5).status_code == 404
        log = server.log
        manager.repository.close()
    assert log is not None and not log.exists(), "its temporary directory is removed"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/health", timeout=2)


def test_a_database_file_outlives_the_server(tmp_path: Path, scripted: Any) -> None:
    database = tmp_path / "notebook.db"
    with SessionBackendServer(database, binary=binary()) as server:
        manager = SessionBackendSessionManager("kept", base_url=server.url)
        Agent(model=scripted([[{"text": "hi"}]]), session_manager=manager, callback_handler=None)("Hello")
        manager.repository.close()
    assert database.exists()
    with SessionBackendServer(database, binary=binary()) as server:
        manager = SessionBackendSessionManager("kept", base_url=server.url)
        restored = Agent(model=scripted([]), session_manager=manager, callback_handler=None)
        assert [m["role"] for m in restored.messages] == ["user", "assistant"]
        manager.repository.close()


def test_a_server_that_cannot_start_says_why() -> None:
    server = SessionBackendServer(binary=binary(), env={"SESSION_BACKEND_DATABASE__POOLER": "sideways"})
    with pytest.raises(SessionBackendError) as failed:
        server.start()
    assert "database.pooler" in str(failed.value)
    server.stop()

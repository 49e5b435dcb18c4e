"""The package README's one-liners work as written."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from conftest import Service

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_three_one_liners_run_as_written(service: Service) -> None:
    text = README.read_text()
    section = text.split("## One line each", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    source = code.group(1)
    assert 'URL = "http://session-backend:8001"' in source
    namespace: dict[str, object] = {}
    exec(source.replace("http://session-backend:8001", service.url), namespace)
    repository = namespace["repository"]
    session = repository.read_session("chat-42")  # type: ignore[attr-defined]
    assert session is not None and session.session_id == "chat-42"
    agent = namespace["agent"]
    assert type(agent._session_manager).__name__ == "SnapshotSessionManager"  # type: ignore[attr-defined]


def test_the_server_one_liner_runs_as_written() -> None:
    section = README.read_text().split("## The service on this machine", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    from strands import Agent

    namespace: dict[str, object] = {"Agent": Agent}
    exec(code.group(1), namespace)  # SESSION_BACKEND_BIN names this build's binary
    url = namespace["server"].url  # type: ignore[attr-defined]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/health", timeout=2)  # stopped on leaving the with
    manager = namespace["agent"]._session_manager  # type: ignore[attr-defined]
    assert type(manager).__name__ == "SessionBackendSessionManager"
    manager.repository.close()


def test_the_memory_one_liner_runs_as_written(service: Service, sid: str) -> None:
    import asyncio

    from strands import Agent
    from strands.vended_memory_stores.file_memory_store import FileMemoryStore

    from strands_session_backend import SessionBackendStorage

    section = README.read_text().split("## Long-term memory", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    namespace: dict[str, object] = {
        "Agent": Agent,
        "URL": service.url,
        "SessionBackendStorage": SessionBackendStorage,
    }
    exec(code.group(1).replace('"agent-memory"', f'"memory-{sid}"'), namespace)

    async def run() -> list[str]:
        await FileMemoryStore(name=f"memory-{sid}", storage=SessionBackendStorage(service.url)).add(
            "# Note\nhello"
        )
        found = await namespace["memory"].search("hello")  # type: ignore[attr-defined]
        return [entry.content for entry in found]

    assert asyncio.run(run()) == ["# Note\nhello"]

"""SessionBackendStorage: the SDK's Storage protocol and SnapshotSessionManager over the service."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from strands import Agent
from strands.session import SnapshotSessionManager
from strands.storage.storage import Storage
from strands.types.exceptions import StorageError

from strands_session_backend import BlobSession, SessionBackendRepository, SessionBackendStorage


def test_the_storage_protocol_round_trips_bytes(url: str, sid: str) -> None:
    async def run() -> None:
        storage = SessionBackendStorage(url)
        assert isinstance(storage, Storage)
        prefix = f"t/{sid}"
        values = {
            f"{prefix}/empty": b"",
            f"{prefix}/binary": bytes(range(256)) * 3,
            f"{prefix}/ü x%y": b"\x00",
        }
        for key, value in values.items():
            await storage.write(key, value)
        for key, value in values.items():
            assert await storage.read(key) == value
        assert await storage.read(f"{prefix}/missing") is None
        assert await storage.list(f"{prefix}/") == sorted(values, key=lambda k: k.encode())
        assert await storage.list(f"//{prefix}//") == sorted(values, key=lambda k: k.encode())
        await storage.delete(f"{prefix}/binary")
        await storage.delete(f"{prefix}/binary")
        assert await storage.read(f"{prefix}/binary") is None
        with pytest.raises(StorageError):
            await storage.write(f"{prefix}/../escape", b"x")
        assert await storage.delete_prefix(f"{prefix}/") == 2
        assert await storage.list(prefix) == []

    asyncio.run(run())


def test_search_ranks_on_the_service(url: str, sid: str) -> None:
    async def run() -> None:
        storage = SessionBackendStorage(url)
        await storage.write(f"{sid}/a", b"the quick brown fox jumps over the lazy dog, quick quick")
        await storage.write(f"{sid}/b", b"a quick note")
        await storage.write(f"{sid}/c", b"nothing relevant")
        results = await storage.search("quick fox", prefix=f"{sid}/")
        assert [r.key for r in results] == [f"{sid}/a", f"{sid}/b"]
        assert results[0].score >= results[1].score > 0

    asyncio.run(run())


def test_listing_follows_pages_to_the_end(url: str, sid: str) -> None:
    async def run() -> None:
        storage = SessionBackendStorage(url)
        storage.list_page = 100
        keys = [f"{sid}/{i:05d}" for i in range(1_050)]
        for start in range(0, len(keys), 100):
            await asyncio.gather(*(storage.write(k, b"v") for k in keys[start : start + 100]))
        assert await storage.list(f"{sid}/") == keys
        assert await storage.delete_prefix(f"{sid}/") == len(keys)

    asyncio.run(run())


def snapshot_agent(url: str, sid: str, model: Any) -> tuple[Agent, SnapshotSessionManager]:
    manager = SnapshotSessionManager(sid, storage=SessionBackendStorage(url))
    agent = Agent(agent_id="snap", model=model, session_manager=manager, callback_handler=None)
    return agent, manager


def test_snapshot_session_manager_saves_restores_and_deletes(url: str, sid: str, scripted: Any) -> None:
    agent, manager = snapshot_agent(url, sid, scripted([[{"text": "one"}], [{"text": "two"}]]))
    agent("first")
    agent.state.set("mood", "curious")
    checkpoint = asyncio.run(manager.save_snapshot(agent, is_latest=False))
    agent("second")
    assert checkpoint is not None

    # The latest snapshot restores into a new agent (another replica).
    restored, other = snapshot_agent(url, sid, scripted([]))
    assert restored.messages == agent.messages
    assert restored.state.get() == agent.state.get()
    # Immutable snapshots are listed and restore the state they captured.
    assert asyncio.run(other.list_snapshot_ids(restored)) == [checkpoint]
    assert asyncio.run(other.restore_snapshot(restored, snapshot_id=checkpoint)) is True
    assert len(restored.messages) == 2 and restored.messages[1]["content"][0]["text"] == "one"
    # Deleting the session removes everything under it.
    storage = SessionBackendStorage(url)
    assert asyncio.run(storage.list(f"session/{sid}/"))
    asyncio.run(other.delete_session())
    assert asyncio.run(storage.list(f"session/{sid}/")) == []
    fresh, _ = snapshot_agent(url, sid, scripted([]))
    assert fresh.messages == []


def test_a_snapshot_session_forks_and_the_fork_goes_its_own_way(url: str, sid: str, scripted: Any) -> None:
    agent, _ = snapshot_agent(url, sid, scripted([[{"text": "one"}], [{"text": "two"}]]))
    agent("first")
    agent("second")
    repository = SessionBackendRepository(url)
    fork = repository.fork_session(sid, f"{sid}-fork")
    assert isinstance(fork, BlobSession) and fork.session_id == f"{sid}-fork" and fork.blobs >= 1
    branch, _ = snapshot_agent(url, f"{sid}-fork", scripted([[{"text": "three"}]]))
    assert branch.messages == agent.messages
    branch("another")
    assert len(branch.messages) == 6
    assert len(snapshot_agent(url, sid, scripted([]))[0].messages) == 4, "the source is as it was"
    repository.close()

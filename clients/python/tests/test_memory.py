"""Long-term memory on the service: the SDK's MemoryManager with a FileMemoryStore over
SessionBackendStorage, its search scoped to the store's namespace on the service."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Service, start
from strands import Agent
from strands.memory import MemoryManager
from strands.storage.storage import _NamespacedStorage
from strands.vended_memory_stores.file_memory_store import FileMemoryStore
from test_auth import mint

from strands_session_backend import SessionBackendStorage

#: More values outside the memory store than one search answers, each matching the query
#: better than the stored memory does.
DECOYS = 1_050


def memory(storage: SessionBackendStorage, name: str) -> FileMemoryStore:
    return FileMemoryStore(name=name, storage=storage)


def test_the_memory_one_liner_adds_and_finds_across_restarts(url: str, sid: str, scripted: Any) -> None:
    name = f"memory-{sid}"
    agent = Agent(
        model=scripted([]),
        memory_manager=MemoryManager(stores=[FileMemoryStore(name=name, storage=SessionBackendStorage(url))]),
        callback_handler=None,
    )
    assert agent is not None

    async def remember() -> None:
        store = memory(SessionBackendStorage(url), name)
        key = await store.add("# Travel preferences\nThe user prefers window seats on long flights")
        assert key == "travel-preferences.md"
        await store.add("# Travel preferences\nAnd an aisle seat on short hops")

    async def recall() -> list[str]:
        # A new storage and store: what a restarted agent process has.
        manager = MemoryManager(stores=[memory(SessionBackendStorage(url), name)], injection=False)
        return [entry.content for entry in await manager.search("window seats")]

    asyncio.run(remember())
    found = asyncio.run(recall())
    assert len(found) == 1 and "window seats" in found[0] and "aisle seat" in found[0], found
    keys = asyncio.run(SessionBackendStorage(url).list(f"memory/{name}/"))
    assert keys == [f"memory/{name}/travel-preferences.md"]


def test_a_namespace_is_searched_on_the_service_however_many_values_are_elsewhere(url: str, sid: str) -> None:
    name = f"crowded-{sid}"

    async def run() -> tuple[list[str], list[str]]:
        storage = SessionBackendStorage(url)
        store = memory(storage, name)
        await store.add("# Seating\nwindow seats please")
        decoy = b"window window window seats seats seats window seats"
        for start_at in range(0, DECOYS, 50):
            await asyncio.gather(
                *(storage.write(f"elsewhere/{sid}/{n}", decoy) for n in range(start_at, start_at + 50))
            )
        ours = [hit.key for hit in await storage.namespace(f"memory/{name}").search("window seats")]
        # The SDK's generic view: a global search, filtered afterwards.
        generic = _NamespacedStorage(storage, f"memory/{name}")
        theirs = [hit.key for hit in await generic.search("window seats")]
        await storage.delete_prefix(f"elsewhere/{sid}/")
        return ours, theirs

    ours, theirs = asyncio.run(run())
    assert ours == ["seating.md"], ours
    assert theirs == [], "the generic view loses it among the decoys (what the namespace fixes)"


class CountingStorage(SessionBackendStorage):
    """Counts the values read one by one."""

    reads = 0

    async def read(self, key: str) -> bytes | None:
        CountingStorage.reads += 1
        return await super().read(key)


def test_search_brings_the_values_so_the_memory_store_reads_none_again(url: str, sid: str) -> None:
    name = f"values-{sid}"

    async def run() -> tuple[list[str], list[Any], int]:
        storage = CountingStorage(url)
        store = memory(storage, name)
        await store.add("# Pets\nthe user has a cat named Miso")
        await store.add("# Food\nthe cat eats fish")
        hits = await storage.namespace(f"memory/{name}").search("cat")
        CountingStorage.reads = 0
        found = [entry.content for entry in await store.search("cat")]
        return found, hits, CountingStorage.reads

    found, hits, reads = asyncio.run(run())
    assert len(found) == 2 and any("Miso" in text for text in found), found
    assert {hit.key for hit in hits} == {"pets.md", "food.md"}
    assert all(hit.data is not None and b"cat" in hit.data for hit in hits), hits
    assert reads == 0, "the search answer carried every value"


@pytest.fixture(scope="module")
def two_tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str, str]]:
    """A service with keys for two tenants."""
    a, b = mint("team-a"), mint("team-b")
    workdir: Path = tmp_path_factory.mktemp("memory-tenants")
    keys = workdir / "keys"
    keys.write_text(f"{a['tenant']} {a['hash']}\n{b['tenant']} {b['hash']}\n")
    running = start(
        f"sqlite://{workdir / 'sessions.db'}?mode=rwc",
        "sqlite",
        workdir,
        SESSION_BACKEND_AUTH__KEYS_FILE=str(keys),
    )
    yield running, a["key"], b["key"]
    running.process.terminate()
    running.process.wait(timeout=20)


def test_tenants_memories_are_apart(two_tenants: tuple[Service, str, str]) -> None:
    service, key_a, key_b = two_tenants

    async def run() -> tuple[list[str], list[str]]:
        await memory(SessionBackendStorage(service.url, key_a), "shared").add(
            "# Secret\nthe vault code is 4711"
        )
        mine = await memory(SessionBackendStorage(service.url, key_a), "shared").search("vault code")
        theirs = await memory(SessionBackendStorage(service.url, key_b), "shared").search("vault code")
        return [e.content for e in mine], [e.content for e in theirs]

    mine, theirs = asyncio.run(run())
    assert len(mine) == 1 and "4711" in mine[0]
    assert theirs == []

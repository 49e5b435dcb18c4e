"""What persistence costs a Strands agent, per turn and per restore, through this client
beside the SDK's own FileSessionManager, in one run on one machine.

    python bench.py [--turns 200] [--restore 10000] [--binary PATH] [--postgres URL]

Runs the real SDK with a scripted model (no network, no LLM) against the service
started by ``SessionBackendServer`` (SQLite in a temporary directory, or with
``--postgres`` that database). Each figure is the median of three alternated runs;
"per turn" is the time of one ``agent(prompt)`` minus the same turn without a session
manager; a second service with ``storage.search_index_bytes = 0`` shows what indexing
each snapshot for search costs. "Reads" time 256 reads of one 30 KB value, one after another and 32 at a time.
With ``--postgres`` and the package ``strands-postgres-storage`` (and a psycopg driver)
installed, its ``PostgresStorage`` on the same database is measured beside the service.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from strands import Agent
from strands.agent.conversation_manager import NullConversationManager
from strands.models.model import Model
from strands.session import FileSessionManager, SnapshotSessionManager
from strands.types.session import SessionAgent, SessionMessage

from strands_session_backend import SessionBackendServer, SessionBackendSessionManager, SessionBackendStorage

RUNS = 3


class Echo(Model):
    """Answers each prompt with itself."""

    def update_config(self, **config: Any) -> None:
        pass

    def get_config(self) -> Any:
        return {}

    def structured_output(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    async def stream(self, messages: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        yield {"messageStart": {"role": "assistant"}}
        yield {"contentBlockStart": {"start": {}}}
        yield {"contentBlockDelta": {"delta": {"text": "echo " + messages[-1]["content"][0]["text"]}}}
        yield {"contentBlockStop": {}}
        yield {"messageStop": {"stopReason": "end_turn"}}


def per_turn_ms(make: Callable[[str], Any], turns: int, run: int) -> float:
    """Milliseconds per turn of an agent whose session manager ``make(session_id)`` makes."""
    manager = make(f"bench-{run}-{time.monotonic_ns()}")
    agent = (
        Agent(
            model=Echo(),
            session_manager=manager,
            conversation_manager=NullConversationManager(),
            callback_handler=None,
        )
        if manager is not None
        else Agent(model=Echo(), conversation_manager=NullConversationManager(), callback_handler=None)
    )
    agent("warm up")
    started = time.perf_counter()
    for turn in range(turns):
        agent(f"turn {turn}")
    return (time.perf_counter() - started) * 1000 / turns


def restore_ms(make: Callable[[str], Any], session_id: str) -> float:
    started = time.perf_counter()
    agent = Agent(
        model=Echo(),
        session_manager=make(session_id),
        conversation_manager=NullConversationManager(),
        callback_handler=None,
    )
    elapsed = (time.perf_counter() - started) * 1000
    assert len(agent.messages) > 0
    return elapsed


def reads_ms(storage: Any, concurrency: int, count: int = 256) -> float:
    """Milliseconds for ``count`` reads of one 30 KB value, ``concurrency`` at a time."""

    async def run() -> float:
        value = b"x" * 30_000
        await storage.write("bench/read-me", value)
        gate = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with gate:
                assert await storage.read("bench/read-me") == value

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        return (time.perf_counter() - started) * 1000

    return asyncio.run(run())


def fill(url: str, session_id: str, messages: int) -> None:
    """A session whose agent has ``messages`` messages, written through the batch API."""
    with httpx.Client(base_url=url, timeout=60) as client:
        client.post("/api/v1/sessions", json={"session_id": session_id}).raise_for_status()
        agent = {
            "agent_id": "default",
            "state": {},
            "conversation_manager_state": {"__name__": "NullConversationManager", "removed_message_count": 0},
        }
        client.post(f"/api/v1/sessions/{session_id}/agents", json=agent).raise_for_status()
        for start in range(0, messages, 1000):
            batch = [
                {
                    "message_id": n,
                    "message": {
                        "role": "user" if n % 2 == 0 else "assistant",
                        "content": [{"text": f"message {n} " + "x" * 80}],
                    },
                }
                for n in range(start, min(start + 1000, messages))
            ]
            path = f"/api/v1/sessions/{session_id}/agents/default/messages/batch"
            client.post(path, json={"messages": batch}).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--restore", type=int, default=10_000)
    parser.add_argument("--binary", default=None)
    parser.add_argument("--postgres", default=None, help="postgres://… for the service (and PostgresStorage)")
    args = parser.parse_args()
    env = {"SESSION_BACKEND_DATABASE__URL": args.postgres} if args.postgres else {}
    unindexed_env = {**env, "SESSION_BACKEND_STORAGE__SEARCH_INDEX_BYTES": "0"}
    with (
        SessionBackendServer(binary=args.binary, env=env) as server,
        SessionBackendServer(binary=args.binary, env=unindexed_env) as unindexed,
        tempfile.TemporaryDirectory() as files,
    ):
        url = server.url
        storage = SessionBackendStorage(url)
        plain_storage = SessionBackendStorage(unindexed.url)
        makers: dict[str, Callable[[str], Any]] = {
            "no session manager": lambda sid: None,
            "FileSessionManager (SDK)": lambda sid: FileSessionManager(sid, storage_dir=files),
            "SessionBackendSessionManager": lambda sid: SessionBackendSessionManager(sid, base_url=url),
            "SnapshotSessionManager over SessionBackendStorage": lambda sid: SnapshotSessionManager(
                sid, storage=storage
            ),
            "  the same, search index off": lambda sid: SnapshotSessionManager(sid, storage=plain_storage),
        }
        storages: dict[str, Any] = {"SessionBackendStorage": storage}
        if args.postgres and importlib.util.find_spec("strands_postgres_storage"):
            from strands_postgres_storage import PostgresStorage  # type: ignore[import-not-found,unused-ignore]

            engine_url = args.postgres.replace("postgres://", "postgresql+psycopg://", 1)
            postgres = PostgresStorage(engine_url)
            storages["PostgresStorage (strands-postgres-storage)"] = postgres
            makers["SnapshotSessionManager over PostgresStorage"] = lambda sid: SnapshotSessionManager(
                sid, storage=postgres
            )
        runs: dict[str, list[float]] = {name: [] for name in makers}
        for run in range(RUNS):
            for name, make in makers.items():
                runs[name].append(per_turn_ms(make, args.turns, run))
        bare = statistics.median(runs["no session manager"])
        print(f"per turn ({args.turns} turns, median of {RUNS}; bare agent {bare:.2f} ms):")
        for name, times in runs.items():
            if name != "no session manager":
                print(f"  {name:<50} {statistics.median(times) - bare:7.2f} ms")

        print(f"reads of a 30 KB value (256 reads, median of {RUNS}):")
        for name, store in storages.items():
            for concurrency in (1, 32):
                took = statistics.median(reads_ms(store, concurrency) for _ in range(RUNS))
                print(f"  {name:<44} {concurrency:>2} at a time {took:7.0f} ms ({256_000 / took:6.0f}/s)")

        restored = f"restore-me-{time.time_ns()}"  # a database given with --postgres may hold earlier runs
        fill(url, restored, args.restore)
        fill_files(files, restored, args.restore)
        restores: dict[str, list[float]] = {
            "FileSessionManager (SDK)": [],
            "SessionBackendSessionManager": [],
        }
        for _ in range(RUNS):
            for name in restores:
                restores[name].append(restore_ms(makers[name], restored))
        print(f"restore of {args.restore:,} messages (median of {RUNS}):")
        for name, times in restores.items():
            print(f"  {name:<50} {statistics.median(times):7.0f} ms")


def fill_files(directory: str, session_id: str, messages: int) -> None:
    """The same session in FileSessionManager's layout, written through its repository calls."""
    repository = FileSessionManager(session_id, storage_dir=directory)
    repository.create_agent(
        session_id,
        SessionAgent(
            agent_id="default",
            state={},
            conversation_manager_state={"__name__": "NullConversationManager", "removed_message_count": 0},
        ),
    )
    for n in range(messages):
        message = {
            "role": "user" if n % 2 == 0 else "assistant",
            "content": [{"text": f"message {n} " + "x" * 80}],
        }
        repository.create_message(session_id, "default", SessionMessage(message=message, message_id=n))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()

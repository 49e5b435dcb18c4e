"""What persistence costs a Strands agent, per turn and per restore, through this client
beside the SDK's own FileSessionManager, in one run on one machine.

    python bench.py [--turns 200] [--restore 10000] [--binary PATH]

Runs the real SDK with a scripted model (no network, no LLM) against the service
started by ``SessionBackendServer`` (SQLite in a temporary directory). Each figure is
the median of three alternated runs; "per turn" is the time of one ``agent(prompt)``
minus the same turn without a session manager.
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()
    with SessionBackendServer(binary=args.binary) as server, tempfile.TemporaryDirectory() as files:
        url = server.url
        storage = SessionBackendStorage(url)
        makers: dict[str, Callable[[str], Any]] = {
            "no session manager": lambda sid: None,
            "FileSessionManager (SDK)": lambda sid: FileSessionManager(sid, storage_dir=files),
            "SessionBackendSessionManager": lambda sid: SessionBackendSessionManager(sid, base_url=url),
            "SnapshotSessionManager over SessionBackendStorage": lambda sid: SnapshotSessionManager(
                sid, storage=storage
            ),
        }
        runs: dict[str, list[float]] = {name: [] for name in makers}
        for run in range(RUNS):
            for name, make in makers.items():
                runs[name].append(per_turn_ms(make, args.turns, run))
        bare = statistics.median(runs["no session manager"])
        print(f"per turn ({args.turns} turns, median of {RUNS}; bare agent {bare:.2f} ms):")
        for name, times in runs.items():
            if name != "no session manager":
                print(f"  {name:<50} {statistics.median(times) - bare:7.2f} ms")

        fill(url, "restore-me", args.restore)
        fill_files(files, "restore-me", args.restore)
        restores: dict[str, list[float]] = {
            "FileSessionManager (SDK)": [],
            "SessionBackendSessionManager": [],
        }
        for _ in range(RUNS):
            for name in restores:
                restores[name].append(restore_ms(makers[name], "restore-me"))
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

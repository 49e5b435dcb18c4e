"""The real Strands SDK persisting agents through the service and restoring them."""

from __future__ import annotations

import time
from typing import Any

from strands import Agent, tool
from strands.agent.conversation_manager import SlidingWindowConversationManager
from strands.types.content import Message
from strands.types.session import SessionMessage

from strands_session_backend import SessionBackendRepository, SessionBackendSessionManager


@tool
def manager_of(agent: Agent) -> SessionBackendSessionManager:
    """The agent's session manager, which the tests gave it."""
    manager = agent._session_manager
    assert isinstance(manager, SessionBackendSessionManager)
    return manager


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def tool_turn(use_id: str, a: int, b: int, answer: str) -> list[list[dict[str, Any]]]:
    """A turn in which the model calls ``add`` and then answers."""
    return [
        [
            {"text": "Let me add."},
            {"toolUse": {"toolUseId": use_id, "name": "add", "input": {"a": a, "b": b}}},
        ],
        [{"text": answer}],
    ]


def agent_for(url: str, sid: str, model: Any, **kwargs: Any) -> Agent:
    return Agent(
        agent_id="assistant",
        model=model,
        tools=[add],
        session_manager=SessionBackendSessionManager(sid, base_url=url),
        callback_handler=None,
        **kwargs,
    )


def test_a_multi_turn_conversation_with_tools_restores_exactly(url: str, sid: str, scripted: Any) -> None:
    script = [*tool_turn("t1", 2, 3, "5"), [{"text": "Noted."}], *tool_turn("t2", 40, 2, "42")]
    first = agent_for(url, sid, scripted(script))
    first("What is 2 + 3?")
    first.state.set("user", {"name": "Ada", "visits": 2**60})
    first("Remember me.")
    first("And 40 + 2?")
    assert any("toolUse" in block for m in first.messages for block in m["content"])

    second = agent_for(url, sid, scripted([]))
    assert second.messages == first.messages
    assert second.state.get() == first.state.get()
    assert second.conversation_manager.get_state() == first.conversation_manager.get_state()
    assert second._interrupt_state.to_dict() == first._interrupt_state.to_dict()
    stored = SessionBackendRepository(url).read_agent(sid, "assistant")
    assert stored is not None and "interrupt_state" in stored._internal_state


def test_a_sliding_window_restores_from_the_removed_message_offset(url: str, sid: str, scripted: Any) -> None:
    turns = [[{"text": f"answer {i}"}] for i in range(6)]
    first = agent_for(
        url, sid, scripted(turns), conversation_manager=SlidingWindowConversationManager(window_size=4)
    )
    for i in range(6):
        first(f"question {i}")
    removed = first.conversation_manager.removed_message_count
    assert removed > 0 and len(first.messages) <= 4
    second = agent_for(
        url, sid, scripted([]), conversation_manager=SlidingWindowConversationManager(window_size=4)
    )
    assert second.conversation_manager.removed_message_count == removed
    assert second.messages == first.messages
    # Every message is still stored.
    assert len(SessionBackendRepository(url).list_messages(sid, "assistant")) == 12


def test_a_5000_message_history_restores_completely(url: str, sid: str, scripted: Any) -> None:
    first = agent_for(url, sid, scripted([]))
    history: list[Message] = []
    for i in range(2500):
        history.append({"role": "user", "content": [{"text": f"question {i}"}]})
        history.append({"role": "assistant", "content": [{"text": f"answer {i}"}]})
    # Append through the session manager as the agent would, message by message.
    repo = manager_of(first).repository

    for index, message in enumerate(history):
        repo.create_message(sid, "assistant", SessionMessage.from_message(message, index))
    started = time.perf_counter()
    restored = agent_for(
        url, sid, scripted([]), conversation_manager=SlidingWindowConversationManager(window_size=10_000)
    )
    elapsed = time.perf_counter() - started
    print(f"restored 5,000 messages in {elapsed * 1000:.0f} ms")
    assert restored.messages == history


def test_redact_latest_message_persists_and_restores(url: str, sid: str, scripted: Any) -> None:
    first = agent_for(url, sid, scripted([[{"text": "a secret answer"}]]))
    first("tell me a secret")
    redacted: Message = {"role": "assistant", "content": [{"text": "[REDACTED]"}]}
    manager_of(first).redact_latest_message(redacted, first)
    second = agent_for(url, sid, scripted([]))
    assert second.messages[-1] == redacted
    assert second.messages[0] == first.messages[0]

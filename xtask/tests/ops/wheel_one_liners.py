"""The README's one-liners in a fresh virtualenv, against the bundled server."""

import json
from collections.abc import AsyncIterator
from typing import Any

import session_backend
from strands import Agent
from strands.models.model import Model
from strands.session import SnapshotSessionManager

from strands_session_backend import (
    SessionBackendRepository,
    SessionBackendServer,
    SessionBackendSessionManager,
    SessionBackendStorage,
)


class Echo(Model):
    """Answers every prompt with the prompt: no network, no LLM."""

    def update_config(self, **config: Any) -> None:
        pass

    def get_config(self) -> Any:
        return {}

    def structured_output(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    async def stream(self, messages: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        text = "echo: " + messages[-1]["content"][0]["text"]
        yield {"messageStart": {"role": "assistant"}}
        yield {"contentBlockStart": {"start": {}}}
        yield {"contentBlockDelta": {"delta": {"text": text}}}
        yield {"contentBlockStop": {}}
        yield {"messageStop": {"stopReason": "end_turn"}}


assert "/bin/session-backend" in str(session_backend.binary()), session_backend.binary()
with SessionBackendServer() as server:
    url = server.url
    agent = Agent(
        session_manager=SessionBackendSessionManager("chat-42", base_url=url), model=Echo(), callback_handler=None
    )
    agent("Hello")
    restored = Agent(
        session_manager=SessionBackendSessionManager("chat-42", base_url=url), model=Echo(), callback_handler=None
    )
    assert [m["content"][0]["text"] for m in restored.messages] == ["Hello", "echo: Hello"], restored.messages
    with SessionBackendRepository(url) as repository:
        assert repository.read_session("chat-42") is not None
    storage = SessionBackendStorage(url)
    noted = Agent(
        session_manager=SnapshotSessionManager("notes-1", storage=storage), model=Echo(), callback_handler=None
    )
    noted("Remember this")
    again = Agent(
        session_manager=SnapshotSessionManager("notes-1", storage=storage), model=Echo(), callback_handler=None
    )
    assert again.messages == noted.messages and len(again.messages) == 2, again.messages
    print(json.dumps({"url": url, "messages": len(restored.messages)}))
print("one-liners ran")

"""SessionBackendRepository against the real service."""

from __future__ import annotations

import socket
import threading
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx
import pytest
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

import strands_session_backend
from strands_session_backend import SessionBackendError, SessionBackendRepository

if TYPE_CHECKING:
    from strands.multiagent.base import MultiAgentBase


class Orchestrator:
    """What the repository needs of a Graph or Swarm: an id and its state."""

    def __init__(self, id: str, state: dict[str, Any]) -> None:
        self.id = id
        self.state = state

    def serialize_state(self) -> dict[str, Any]:
        return self.state


def message(i: int, text: str | None = None) -> SessionMessage:
    return SessionMessage.from_message({"role": "user", "content": [{"text": text or f"m{i}"}]}, i)


def test_version_is_the_servers() -> None:
    cargo = tomllib.loads((Path(__file__).resolve().parents[3] / "Cargo.toml").read_text())
    assert strands_session_backend.__version__ == cargo["workspace"]["package"]["version"]


def test_sessions_agents_messages_and_multi_agents_round_trip(url: str, sid: str) -> None:
    repo = SessionBackendRepository(url)
    assert repo.read_session(sid) is None
    session = Session(session_id=sid, session_type=SessionType.AGENT)
    repo.create_session(session)
    repo.create_session(session)  # another replica made it: fine
    assert repo.read_session(sid) == session

    agent = SessionAgent(
        agent_id="a:1 ü@x",
        state={"k": [1, 2**70]},
        conversation_manager_state={"n": 1},
        _internal_state={"interrupt_state": {"activated": False}},
    )
    repo.create_agent(sid, agent)
    repo.create_agent(sid, agent)
    stored = repo.read_agent(sid, "a:1 ü@x")
    assert stored is not None
    assert (stored.state, stored.conversation_manager_state, stored._internal_state) == (
        agent.state,
        agent.conversation_manager_state,
        agent._internal_state,
    )
    agent.state = {"k": "changed"}
    repo.update_agent(sid, agent)
    assert repo.read_agent(sid, "a:1 ü@x").state == {"k": "changed"}  # type: ignore[union-attr]
    assert repo.read_agent(sid, "missing") is None

    sent = [message(i) for i in range(25)]
    for m in sent:
        repo.create_message(sid, "a:1 ü@x", m)
    repo.create_message(sid, "a:1 ü@x", sent[3])  # a retry of what landed
    assert [m.message_id for m in repo.list_messages(sid, "a:1 ü@x")] == list(range(25))
    assert [m.message_id for m in repo.list_messages(sid, "a:1 ü@x", limit=5, offset=10)] == list(
        range(10, 15)
    )
    assert repo.list_messages(sid, "a:1 ü@x", offset=30) == []
    assert repo.read_message(sid, "a:1 ü@x", 99) is None
    redacted = message(2)
    redacted.redact_message = {"role": "user", "content": [{"text": "[redacted]"}]}
    repo.update_message(sid, "a:1 ü@x", redacted)
    back = repo.read_message(sid, "a:1 ü@x", 2)
    assert back is not None and back.to_message() == redacted.redact_message

    graph = Orchestrator("graph-1", {"type": "graph", "status": "executing", "node_results": {}})
    assert repo.read_multi_agent(sid, "graph-1") is None
    repo.create_multi_agent(sid, cast("MultiAgentBase", graph))
    assert repo.read_multi_agent(sid, "graph-1") == graph.state
    graph.state = {**graph.state, "status": "completed"}
    repo.update_multi_agent(sid, cast("MultiAgentBase", graph))
    assert repo.read_multi_agent(sid, "graph-1") == graph.state

    assert sid in [s.session_id for s in repo.list_sessions()]
    assert repo.delete_session(sid) is True
    assert repo.read_session(sid) is None and repo.read_agent(sid, "a:1 ü@x") is None
    assert repo.delete_session(sid) is False


def test_listed_messages_equal_what_the_sdks_from_dict_builds(url: str, sid: str) -> None:
    """The fast path of list_messages against the SDK's own: equal field for field, with and
    without encoded bytes (an image, a redaction) on the page."""
    repo = SessionBackendRepository(url)
    repo.create_session(Session(session_id=sid, session_type=SessionType.AGENT))
    repo.create_agent(sid, SessionAgent(agent_id="a", state={}, conversation_manager_state={}))
    for i in range(3):
        repo.create_message(sid, "a", message(i))
    image = {"image": {"format": "png", "source": {"bytes": b"\x89PNG\x00\xff"}}}
    with_bytes = SessionMessage.from_message({"role": "user", "content": [image, {"text": "look"}]}, 3)  # type: ignore[list-item]
    with_bytes.redact_message = {"role": "user", "content": [{"text": "[image removed]"}]}
    repo.create_message(sid, "a", with_bytes)
    raw = httpx.get(f"{url}/api/v1/sessions/{sid}/agents/a/messages", params={"limit": 100}).json()
    expected = [SessionMessage.from_dict(item) for item in raw["messages"]]
    listed = repo.list_messages(sid, "a")
    assert listed == expected and len(listed) == 4
    assert listed[3].message["content"][0]["image"]["source"]["bytes"] == b"\x89PNG\x00\xff"
    plain = repo.list_messages(sid, "a", limit=3)
    assert plain == expected[:3] and all(isinstance(m, SessionMessage) for m in plain)


def test_errors_carry_the_services_message_kind_and_request_id(url: str, sid: str) -> None:
    repo = SessionBackendRepository(url)
    with pytest.raises(SessionBackendError) as caught:
        repo.create_agent(sid, SessionAgent(agent_id="a", state={}, conversation_manager_state={}))
    assert caught.value.status == 404 and caught.value.kind == "NotFoundError"
    repo.create_session(Session(session_id=sid, session_type=SessionType.AGENT))
    repo.create_agent(sid, SessionAgent(agent_id="a", state={}, conversation_manager_state={}))
    repo.create_message(sid, "a", message(0, "first"))
    with pytest.raises(SessionBackendError) as caught:
        repo.create_message(sid, "a", message(0, "different"))
    err = caught.value
    assert err.status == 409 and err.kind == "ConflictError"
    assert err.request_id and err.request_id in str(err) and err.message in str(err)
    for bad in ["a\\b", "x" * 256, ".."]:
        with pytest.raises(SessionBackendError) as caught:
            repo.read_session(bad)
        assert caught.value.kind == "ValidationError"


def test_two_repositories_racing_to_create_one_session_both_succeed(url: str, sid: str) -> None:
    barrier = threading.Barrier(8)
    failures: list[BaseException] = []

    def create() -> None:
        repo = SessionBackendRepository(url)
        barrier.wait()
        try:
            repo.create_session(Session(session_id=sid, session_type=SessionType.AGENT))
            repo.create_agent(sid, SessionAgent(agent_id="a", state={}, conversation_manager_state={}))
        except BaseException as err:
            failures.append(err)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert SessionBackendRepository(url).read_agent(sid, "a") is not None


def read_request(conn: socket.socket) -> bytes:
    """One whole HTTP/1.1 request with a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


class DroppingProxy:
    """A TCP proxy on loopback that forwards to the service, but on every
    ``drop_every``-th connection cuts the client off after the service has
    answered, so the client sees the request fail although it landed."""

    def __init__(self, upstream: str, drop_every: int) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.drop_every = drop_every
        self.connections = 0
        self.dropped = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            drop = self.connections % self.drop_every == 0
            threading.Thread(target=self._serve, args=(client, drop), daemon=True).start()

    def _serve(self, client: socket.socket, drop: bool) -> None:
        # One request per connection (the client sends `Connection: close`,
        # so the service closes after its answer).
        upstream = socket.create_connection(self.upstream)
        client.settimeout(10)
        upstream.settimeout(10)
        try:
            upstream.sendall(read_request(client))
            response = b""
            while chunk := upstream.recv(65536):
                response += chunk
            if drop:
                self.dropped += 1
            else:
                client.sendall(response)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()

    def close(self) -> None:
        self.listener.close()


def test_a_dropped_append_is_retried_without_duplicating_or_losing(url: str, sid: str) -> None:
    repo = SessionBackendRepository(url)
    repo.create_session(Session(session_id=sid, session_type=SessionType.AGENT))
    repo.create_agent(sid, SessionAgent(agent_id="a", state={}, conversation_manager_state={}))
    proxy = DroppingProxy(url, drop_every=3)
    try:
        flaky = SessionBackendRepository(proxy.url, retries=5)
        # A fresh connection per request, so every third one is cut.
        flaky._client.headers["Connection"] = "close"
        for i in range(30):
            flaky.create_message(sid, "a", message(i))
    finally:
        proxy.close()
    assert proxy.dropped >= 5, "the proxy did cut connections after the service answered"
    stored = repo.list_messages(sid, "a")
    assert [m.message_id for m in stored] == list(range(30))
    assert [m.message["content"][0]["text"] for m in stored] == [f"m{i}" for i in range(30)]

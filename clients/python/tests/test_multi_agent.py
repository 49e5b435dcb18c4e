"""Graph and Swarm persisting through the multi-agent endpoints, and resuming."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import ScriptedModel
from strands import Agent
from strands.multiagent import GraphBuilder, Swarm
from strands.multiagent.base import Status

from strands_session_backend import SessionBackendRepository, SessionBackendSessionManager


class Crashing(ScriptedModel):
    """A model whose process "dies" mid-node."""

    async def stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise RuntimeError("the process died")
        yield {}


class Counting(ScriptedModel):
    """A scripted model that records which node called it."""

    def __init__(self, name: str, turns: list[list[dict[str, Any]]], calls: list[str]) -> None:
        super().__init__(turns)
        self.name, self.calls = name, calls

    async def stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        self.calls.append(self.name)
        async for event in super().stream(*args, **kwargs):
            yield event


def graph(url: str, sid: str, b_model: ScriptedModel, calls: list[str]) -> Any:
    builder = GraphBuilder()
    a = Agent(name="a", model=Counting("a", [[{"text": "A done"}]], calls), callback_handler=None)
    builder.add_node(a, "a")
    builder.add_node(Agent(name="b", model=b_model, callback_handler=None), "b")
    builder.add_edge("a", "b")
    builder.set_entry_point("a")
    builder.set_graph_id("pipeline")
    builder.set_execution_timeout(60)
    builder.set_session_manager(SessionBackendSessionManager(sid, base_url=url))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return builder.build()


def test_a_graph_cut_off_mid_run_resumes_at_the_node_that_did_not_finish(url: str, sid: str) -> None:
    calls: list[str] = []
    first = graph(url, sid, Crashing([]), calls)
    with pytest.raises(RuntimeError, match="the process died"):
        first("write the report")
    stored = SessionBackendRepository(url).read_multi_agent(sid, "pipeline")
    assert stored is not None
    assert stored["completed_nodes"] == ["a"] and stored["next_nodes_to_execute"] == ["b"]

    calls.clear()
    second = graph(url, sid, Counting("b", [[{"text": "B done"}]], calls), calls)
    second("write the report")
    assert calls == ["b"], "node a is not run again"
    assert {node.node_id for node in second.state.completed_nodes} == {"a", "b"}
    stored = SessionBackendRepository(url).read_multi_agent(sid, "pipeline")
    assert stored is not None and sorted(stored["completed_nodes"]) == ["a", "b"]
    assert "B done" in str(stored["node_results"]["b"])


HANDOFF: list[list[dict[str, Any]]] = [
    [
        {
            "toolUse": {
                "toolUseId": "h1",
                "name": "handoff_to_agent",
                "input": {"agent_name": "writer", "message": "write it", "context": {"topic": "tides"}},
            }
        }
    ],
    [{"text": "handed off"}],
]


def swarm(url: str, sid: str, writer_model: ScriptedModel) -> Swarm:
    researcher = Agent(name="researcher", model=ScriptedModel(HANDOFF), callback_handler=None)
    writer = Agent(name="writer", model=writer_model, callback_handler=None)
    manager = SessionBackendSessionManager(sid, base_url=url)
    return Swarm([researcher, writer], id="team", session_manager=manager, execution_timeout=60)


def test_a_swarm_persists_every_run_through_the_service(url: str, sid: str) -> None:
    first = swarm(url, sid, Crashing([]))
    assert first("research and write").status == Status.FAILED
    stored = SessionBackendRepository(url).read_multi_agent(sid, "team")
    assert stored is not None
    assert stored["status"] == "failed" and stored["node_history"] == ["researcher"]

    # Another replica picks the session up and runs the swarm to the end.
    second = swarm(url, sid, ScriptedModel([[{"text": "the article"}]]))
    result = second("research and write")
    assert result.status == Status.COMPLETED
    stored = SessionBackendRepository(url).read_multi_agent(sid, "team")
    assert stored is not None
    assert stored["status"] == "completed" and stored["node_history"] == ["researcher", "writer"]
    assert "the article" in str(stored["node_results"]["writer"])

"""Session leases from the client: one worker writes a session at a time."""

from __future__ import annotations

import gc
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from strands import Agent

from strands_session_backend import (
    SessionBackendError,
    SessionBackendRepository,
    SessionBackendSessionManager,
    SessionLeaseError,
)


def leased_agent(url: str, sid: str, model: Any, **lease: Any) -> tuple[Agent, SessionBackendSessionManager]:
    manager = SessionBackendSessionManager(sid, base_url=url, lease=True, **lease)
    agent = Agent(agent_id="assistant", model=model, session_manager=manager, callback_handler=None)
    return agent, manager


def live_lease(url: str, sid: str) -> Any:
    return httpx.get(f"{url}/api/v1/sessions/{sid}/lease", timeout=5).json()


def test_a_leased_agent_writes_and_another_worker_is_told_who_holds_it(
    url: str, sid: str, scripted: Any
) -> None:
    agent, manager = leased_agent(
        url, sid, scripted([[{"text": "hi"}], [{"text": "again"}]]), lease_holder="w1"
    )
    agent("Hello")
    lease = live_lease(url, sid)
    assert lease["holder"] == "w1"
    with pytest.raises(SessionLeaseError) as held:
        SessionBackendSessionManager(sid, base_url=url, lease=True, lease_holder="w2")
    assert held.value.kind == "LeaseHeldError" and held.value.holder == "w1"
    assert held.value.expires_at is not None and held.value.expires_at > datetime.now(UTC)
    assert "w1" in str(held.value)
    # A worker without the option writes as before, and is refused while the lease lives.
    plain = SessionBackendRepository(url)
    with pytest.raises(SessionLeaseError):
        plain.delete_session(sid)
    plain.close()
    agent("Again")
    manager.close()
    assert live_lease(url, sid) is None
    # Released: the next worker gets it, and restores the whole history.
    second, other = leased_agent(url, sid, scripted([]), lease_holder="w2")
    assert [m["role"] for m in second.messages] == ["user", "assistant", "user", "assistant"]
    assert live_lease(url, sid)["holder"] == "w2"
    other.close()


def test_the_lease_is_renewed_past_its_ttl(url: str, sid: str, scripted: Any) -> None:
    agent, manager = leased_agent(url, sid, scripted([[{"text": "a"}], [{"text": "b"}]]), lease_ttl=1.5)
    token = live_lease(url, sid)["token"]
    agent("One")
    time.sleep(3.5)
    lease = live_lease(url, sid)
    assert lease is not None and lease["token"] == token, "renewed, same token"
    agent("Two")
    manager.close()


def test_a_bounded_wait_takes_the_lease_once_it_is_free(url: str, sid: str, scripted: Any) -> None:
    _, first = leased_agent(url, sid, scripted([]), lease_ttl=30)
    started = time.monotonic()
    with pytest.raises(SessionLeaseError):
        SessionBackendSessionManager(sid, base_url=url, lease=True, lease_wait=0.5)
    assert 0.4 < time.monotonic() - started < 5
    first.lease._stop.set()  # type: ignore[union-attr]  # the first worker stalls: no renewal
    repository = SessionBackendRepository(url)
    repository.break_lease(sid)
    repository.close()
    second = SessionBackendSessionManager(sid, base_url=url, lease=True, lease_wait=5)
    assert second.lease is not None and second.lease.lease is not None
    second.close()


def test_a_worker_that_lost_its_lease_is_refused(url: str, sid: str, scripted: Any) -> None:
    agent, manager = leased_agent(url, sid, scripted([[{"text": "a"}], [{"text": "b"}]]))
    agent("One")
    repository = SessionBackendRepository(url)
    repository.break_lease(sid)
    taken = repository.acquire_lease(sid, "operator", 60)
    with pytest.raises(SessionLeaseError) as lost:
        agent("Two")
    assert lost.value.kind == "LeaseLostError"
    repository.release_lease(sid, taken.token)
    repository.close()
    manager.close()


def test_a_collected_manager_releases_its_lease(url: str, sid: str, scripted: Any) -> None:
    agent, manager = leased_agent(url, sid, scripted([[{"text": "a"}]]))
    agent("One")
    assert live_lease(url, sid) is not None
    del agent, manager
    gc.collect()
    # Released on a thread of its own, not the collector's.
    deadline = time.monotonic() + 10
    while live_lease(url, sid) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live_lease(url, sid) is None


def test_without_the_option_no_lease_is_taken(url: str, sid: str, scripted: Any) -> None:
    manager = SessionBackendSessionManager(sid, base_url=url)
    agent = Agent(
        agent_id="assistant",
        model=scripted([[{"text": "a"}]]),
        session_manager=manager,
        callback_handler=None,
    )
    agent("One")
    assert manager.lease is None
    assert live_lease(url, sid) is None
    manager.close()


def test_bad_lease_settings_are_refused_before_any_call(url: str, sid: str) -> None:
    with pytest.raises(ValueError):
        SessionBackendSessionManager(sid, base_url=url, lease=True, lease_ttl=0)
    with SessionBackendRepository(url) as repository, pytest.raises(SessionBackendError) as missing:
        repository.read_lease(sid)
    assert missing.value.status == 404

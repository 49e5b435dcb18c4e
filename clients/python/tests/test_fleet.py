"""A fleet, as a team runs one: three replicas of the service on one PostgreSQL behind
PgBouncer in transaction mode, a round-robin front that sends every request to the next
replica, real-SDK agents on several workers contending for their sessions with leases,
and every replica in turn stopped with SIGTERM and started again while they run.

Needs PostgreSQL (``TEST_DATABASE_URL``) and a transaction-mode pooler in front of it
(``POOLER_URL``; ``.ci/run`` starts one with ``.ci/pgbouncer.sh``). The role in
``TEST_DATABASE_URL`` needs CREATEROLE: the fleet logs in as a role of its own.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from conftest import ScriptedModel, Service, free_port, start
from strands import Agent
from strands.agent.conversation_manager import NullConversationManager

from strands_session_backend import SessionBackendRepository, SessionBackendSessionManager

REPLICAS = 3
#: Sessions two workers contend for; one more is taken over from a paused worker.
SESSIONS = 3
WORKERS_PER_SESSION = 2
TURNS_PER_TENURE = 3
#: Times each replica is stopped and started again.
RESTART_ROUNDS = 2
LEASE_TTL = 5.0
#: A worker's pause between tenures: longer than a waiting worker's poll (at most 1 s),
#: so the lease passes to it rather than back to the same worker.
BETWEEN_TENURES = 1.2
#: Bounds every wait of the test.
DEADLINE = 240.0
#: Headers that belong to one connection and are not forwarded, or that the front sets itself.
NOT_FORWARDED = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "trailer", "upgrade"}
    | {"server", "date"}
)


class RoundRobin(ThreadingHTTPServer):
    """The front: each request goes to the next replica on a connection of its own. A replica
    that refuses the connection (it is stopped) is skipped, as a load balancer retries a
    connect error elsewhere; one that drops a request it took answers 502, for the client
    to retry. It counts what it saw."""

    daemon_threads = True

    def __init__(self, ports: list[int]) -> None:
        super().__init__(("127.0.0.1", 0), Forward)
        self.ports = ports
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.served: Counter[int] = Counter()
        self.skipped = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def relay(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        for _ in self.ports:
            with self._lock:
                port = self.ports[next(self._turn) % len(self.ports)]
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                connection.connect()
            except ConnectionRefusedError:
                with self._lock:
                    self.skipped += 1
                continue
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                answer = Answer(response.status, response.getheaders(), response.read())
            except (OSError, http.client.HTTPException):
                answer = Answer.bad_gateway("the replica dropped the request")
            finally:
                connection.close()
            self._count(port, answer)
            return answer
        answer = Answer.bad_gateway("no replica took the connection")
        self._count(None, answer)
        return answer

    def _count(self, port: int | None, answer: Answer) -> None:
        with self._lock:
            self.statuses[answer.status] += 1
            if port is not None:
                self.served[port] += 1
            if answer.status >= 400:
                self.errors[answer.kind()] += 1


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @classmethod
    def bad_gateway(cls, message: str) -> Answer:
        body = {"detail": {"error": "BadGateway", "message": message}}
        return cls(502, [("Content-Type", "application/json")], json.dumps(body).encode())

    def kind(self) -> str:
        """The error kind of the service's envelope."""
        try:
            return str(json.loads(self.body)["detail"]["error"])
        except (ValueError, KeyError, TypeError):
            return f"HTTP {self.status}"


class Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RoundRobin

    def forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in NOT_FORWARDED}
        answer = self.server.relay(self.command, self.path, headers, body)
        self.send_response(answer.status)
        for name, value in answer.headers:
            if name.lower() not in NOT_FORWARDED:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = forward

    def log_message(self, format: str, *args: Any) -> None:
        pass


def restartable_port() -> int:
    """A free port below the system's ephemeral range (32768 and up on Linux): a replica started
    again on it cannot find it taken by a client connection's local port, as one from
    ``free_port`` can while the replica is down and the workers keep connecting."""
    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(20000, 32768)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


class Fleet:
    """Three replicas of the binary on fixed ports, sharing one database through the pooler."""

    def __init__(self, database_url: str, workdir: Path, env: dict[str, str]) -> None:
        self.database_url, self.workdir, self.env = database_url, workdir, env
        self.ports = [restartable_port() for _ in range(REPLICAS)]
        self.replicas: list[Service] = []
        for port in self.ports:
            self.replicas.append(self._start(port))

    def _start(self, port: int) -> Service:
        return start(self.database_url, "postgres", self.workdir, port=port, **self.env)

    def restart(self, index: int) -> None:
        """SIGTERM, as Kubernetes stops a pod; the replica drains and exits 0; then it starts again."""
        replica = self.replicas[index]
        replica.process.send_signal(signal.SIGTERM)
        code = replica.process.wait(timeout=30)
        assert code == 0, f"replica {index} exited {code}:\n{replica.log_text()}"
        self.replicas[index] = self._start(self.ports[index])

    def stop(self) -> None:
        for replica in self.replicas:
            replica.process.terminate()
        for replica in self.replicas:
            replica.process.wait(timeout=30)


@dataclass
class Ledger:
    """What the workers wrote, in the order they wrote it: each turn is written under the
    session's lease and entered here before the lease is given back, so per session this
    order is the order of the writes."""

    prompts: dict[str, list[str]]
    holders: dict[str, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def begin_tenure(self, session_id: str, holder: str) -> list[str]:
        """Notes a new holder; the prompts written before it came."""
        with self.lock:
            self.holders.setdefault(session_id, []).append(holder)
            return list(self.prompts[session_id])

    def wrote(self, session_id: str, prompt: str) -> None:
        with self.lock:
            self.prompts[session_id].append(prompt)


def answer_to(prompt: str, seen: int) -> str:
    """The model's answer: the prompt and how many messages the agent showed the model."""
    return f"{prompt}: seen {seen}"


def conversation(prompts: list[str]) -> list[str]:
    """The texts of a history of these turns, each answered with the whole history before it in view."""
    history: list[str] = []
    for prompt in prompts:
        history += [prompt, answer_to(prompt, len(history) + 1)]
    return history


class EchoModel(ScriptedModel):
    """Answers every prompt with :func:`answer_to`, so the history shows what each turn saw."""

    def __init__(self) -> None:
        super().__init__([])

    def answer(self, messages: Any) -> list[dict[str, Any]]:
        return [{"text": answer_to(messages[-1]["content"][0]["text"], len(messages))}]


def texts(messages: list[Any]) -> list[str]:
    return [block["text"] for message in messages for block in message["content"]]


def leased_agent(
    url: str, session_id: str, holder: str, **lease: Any
) -> tuple[Agent, SessionBackendSessionManager]:
    manager = SessionBackendSessionManager(
        session_id, base_url=url, lease=True, lease_holder=holder, lease_wait=DEADLINE / 4, **lease
    )
    agent = Agent(
        agent_id="assistant",
        model=EchoModel(),
        session_manager=manager,
        conversation_manager=NullConversationManager(),
        callback_handler=None,
    )
    return agent, manager


def contend(url: str, session_id: str, holder: str, ledger: Ledger, rolled: threading.Event) -> int:
    """One worker: takes the session's lease, checks it restored every turn written before,
    takes a few turns, gives the lease back; again until the restarts are over. Its tenures."""
    tenures = 0
    deadline = time.monotonic() + DEADLINE
    while not (rolled.is_set() and tenures >= 2):
        assert time.monotonic() < deadline, f"{holder} on {session_id}: out of time"
        agent, manager = leased_agent(url, session_id, holder, lease_ttl=LEASE_TTL)
        with manager:
            written = ledger.begin_tenure(session_id, holder)
            assert texts(agent.messages) == conversation(written), f"{holder} restored a stale history"
            for turn in range(TURNS_PER_TENURE):
                prompt = f"{holder} tenure {tenures} turn {turn}"
                agent(prompt)
                ledger.wrote(session_id, prompt)
        tenures += 1
        time.sleep(BETWEEN_TENURES)
    return tenures


def take_over_from_a_paused_worker(url: str, session_id: str, ledger: Ledger) -> str:
    """A worker holding the lease is paused (SIGSTOP) past its TTL; this worker takes the lease
    and writes; the paused one is resumed and tries a turn. What it printed about that turn."""
    script = Path(__file__).with_name("paused_worker.py")
    with subprocess.Popen(
        [sys.executable, str(script), url, session_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as paused:
        assert paused.stdin is not None and paused.stdout is not None
        try:
            assert paused.stdout.readline().strip() == "leased"
            paused.send_signal(signal.SIGSTOP)
            holder = "takes-over"
            agent, manager = leased_agent(url, session_id, holder, lease_ttl=LEASE_TTL)
            with manager:
                ledger.begin_tenure(session_id, holder)
                for turn in range(2):
                    agent(f"{holder} turn {turn}")
                    ledger.wrote(session_id, f"{holder} turn {turn}")
                paused.send_signal(signal.SIGCONT)
                paused.stdin.write("go\n")
                paused.stdin.flush()
                outcome = paused.stdout.readline().strip()
                # Gone, having tried to give back the lease it lost: this worker still holds it.
                assert paused.wait(timeout=30) == 0
                agent(f"{holder} turn 2")
                ledger.wrote(session_id, f"{holder} turn 2")
            return outcome
        finally:
            paused.send_signal(signal.SIGCONT)
            paused.kill()


def roll(fleet: Fleet) -> int:
    """Restarts each replica in turn, RESTART_ROUNDS times over. How many restarts."""
    restarts = 0
    for _ in range(RESTART_ROUNDS):
        for index in range(REPLICAS):
            time.sleep(1.0)
            fleet.restart(index)
            restarts += 1
    return restarts


def with_login(url: str, role: str) -> str:
    """``url`` logging in as ``role``, whose password is its name."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{role}:{role}@{host}"))


def psql(url: str, sql: str, check: bool = True) -> None:
    subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qc", sql], check=check, capture_output=True)


@pytest.fixture
def fleet_database() -> Iterator[tuple[str, str]]:
    """A role and schema of the fleet's own: its URL through the pooler, and past it."""
    direct, pooler = os.environ.get("TEST_DATABASE_URL"), os.environ.get("POOLER_URL")
    if not direct or not pooler:
        message = "needs TEST_DATABASE_URL and POOLER_URL (a transaction-mode PgBouncer: .ci/pgbouncer.sh)"
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"REQUIRE_POSTGRES=1, and the fleet test {message}")
        pytest.skip(message)
    role = f"fleet_{uuid.uuid4().hex[:12]}"
    psql(
        direct,
        f"CREATE SCHEMA {role}; CREATE ROLE {role} LOGIN PASSWORD '{role}'; "
        f"GRANT USAGE, CREATE ON SCHEMA {role} TO {role}; ALTER ROLE {role} SET search_path = {role}",
    )
    yield with_login(pooler, role), with_login(direct, role)
    psql(direct, f"DROP SCHEMA {role} CASCADE; DROP ROLE {role}", check=False)


def test_a_fleet_keeps_every_turn_through_rolling_restarts(
    fleet_database: tuple[str, str], tmp_path: Path
) -> None:
    pooled, direct = fleet_database
    fleet = Fleet(
        pooled,
        tmp_path,
        {"SESSION_BACKEND_DATABASE__POOLER": "transaction", "SESSION_BACKEND_DATABASE__DIRECT_URL": direct},
    )
    front = RoundRobin(fleet.ports)
    threading.Thread(target=front.serve_forever, daemon=True).start()
    run = uuid.uuid4().hex[:8]
    contended = [f"fleet-{run}-{n}" for n in range(SESSIONS)]
    taken_over = f"fleet-{run}-taken-over"
    ledger = Ledger({session_id: [] for session_id in [*contended, taken_over]})
    rolled = threading.Event()
    try:
        with ThreadPoolExecutor(max_workers=SESSIONS * WORKERS_PER_SESSION + 2) as pool:
            workers = [
                pool.submit(contend, front.url, session_id, f"worker-{n}", ledger, rolled)
                for session_id in contended
                for n in range(WORKERS_PER_SESSION)
            ]
            paused = pool.submit(take_over_from_a_paused_worker, front.url, taken_over, ledger)
            rolling = pool.submit(roll, fleet)
            try:
                restarts = rolling.result(timeout=DEADLINE)
            finally:
                rolled.set()
            tenures = sum(worker.result(timeout=DEADLINE) for worker in workers)
            outcome = paused.result(timeout=DEADLINE)
        with SessionBackendRepository(front.url) as repository:
            for session_id, prompts in ledger.prompts.items():
                history = repository.list_messages(session_id, "assistant")
                assert [m.message_id for m in history] == list(range(len(history))), session_id
                assert texts([m.message for m in history]) == conversation(prompts), session_id
                assert repository.read_lease(session_id) is None, f"{session_id}: a lease was left"
    finally:
        front.shutdown()
        front.server_close()
        fleet.stop()

    assert outcome == "refused LeaseLostError takes-over", outcome
    for session_id in contended:
        holders = ledger.holders[session_id]
        handoffs = sum(a != b for a, b in itertools.pairwise(holders))
        assert handoffs >= 1, f"{session_id}: the lease never passed: {holders}"
    assert 500 not in front.statuses, front.errors
    assert all(front.served[port] > 0 for port in fleet.ports), front.served
    turns = sum(len(prompts) for prompts in ledger.prompts.values())
    print(
        f"\nfleet: {turns} turns in {tenures + 1} tenures on {len(ledger.prompts)} sessions, "
        f"{restarts} restarts, lease refusals {front.errors['LeaseHeldError']} held / "
        f"{front.errors['LeaseLostError']} lost, {front.skipped} connections to a stopped replica "
        f"skipped, {front.statuses[502]} dropped requests retried, "
        f"requests per replica {sorted(front.served.values())}, "
        f"statuses {dict(sorted(front.statuses.items()))}"
    )

"""Fixtures: the real service binary on a free port, on SQLite and (with
``TEST_DATABASE_URL``) PostgreSQL, and a scripted model (no network, no LLM)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from strands.models.model import Model

ROOT = Path(__file__).resolve().parents[3]


def binary() -> str:
    """The service binary: ``SESSION_BACKEND_BIN`` or the workspace's build."""
    configured = os.environ.get("SESSION_BACKEND_BIN")
    if configured:
        return configured
    for profile in ("debug", "release"):
        candidate = ROOT / "target" / profile / "session-backend"
        if candidate.exists():
            return str(candidate)
    pytest.fail("no session-backend binary: run `cargo build -p session-backend` or set SESSION_BACKEND_BIN")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    """A running service: its base URL and the database it uses."""

    url: str
    backend: str
    database_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def postgres_schema_url(base: str, schema: str) -> str:
    if shutil.which("psql") is None:
        pytest.fail("TEST_DATABASE_URL is set but psql is not installed")
    subprocess.run(["psql", base, "-qc", f"CREATE SCHEMA {schema}"], check=True, capture_output=True)
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-c%20search_path%3D{schema}"


def start(database_url: str, backend: str, workdir: Path, port: int | None = None, **env: str) -> Service:
    """Starts the binary on ``port`` (a free one if None) and waits until it is ready; its output
    goes to ``server-PORT.log`` in ``workdir``, appended to when a port's server is started again."""
    port = port or free_port()
    log = workdir / f"server-{port}.log"
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "API_PORT": str(port),
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "warn",
        **env,
    }
    with log.open("ab") as out:
        process = subprocess.Popen([binary(), "serve"], cwd=workdir, env=environment, stdout=out, stderr=out)
    service = Service(f"http://127.0.0.1:{port}", backend, database_url, process, log)
    deadline = time.monotonic() + 30
    while True:
        try:
            ready = httpx.get(f"{service.url}/health/ready", timeout=1).status_code == 200
            # Ready, and this process is the one that answered: it is still running.
            if ready and process.poll() is None:
                return service
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the service did not come up:\n{service.log_text()}")
        time.sleep(0.05)


def backends() -> list[str]:
    if os.environ.get("TEST_DATABASE_URL"):
        return ["sqlite", "postgres"]
    if os.environ.get("REQUIRE_POSTGRES") == "1":
        pytest.fail("REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set")
    return ["sqlite"]


@pytest.fixture(scope="session", params=backends())
def service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The service on each backend, shared by the tests (they use fresh ids)."""
    workdir = tmp_path_factory.mktemp(f"service-{request.param}")
    schema = None
    if request.param == "postgres":
        schema = f"py_{uuid.uuid4().hex[:12]}"
        url = postgres_schema_url(os.environ["TEST_DATABASE_URL"], schema)
    else:
        url = f"sqlite://{workdir / 'sessions.db'}?mode=rwc"
    running = start(url, request.param, workdir)
    yield running
    running.process.terminate()
    running.process.wait(timeout=20)
    if schema is not None:
        base = os.environ["TEST_DATABASE_URL"]
        subprocess.run(
            ["psql", base, "-qc", f"DROP SCHEMA {schema} CASCADE"], check=False, capture_output=True
        )


@pytest.fixture
def url(service: Service) -> str:
    return service.url


@pytest.fixture
def sid() -> str:
    """A session id no other test uses."""
    return f"s-{uuid.uuid4().hex}"


class ScriptedModel(Model):
    """A model that answers from a script: each turn is a list of content
    blocks (``{"text": ...}`` or ``{"toolUse": {...}}``); it never calls out."""

    def __init__(self, turns: list[list[dict[str, Any]]]) -> None:
        self.turns = list(turns)
        self.config: dict[str, Any] = {}

    def update_config(self, **model_config: Any) -> None:
        self.config.update(model_config)

    def get_config(self) -> Any:
        return self.config

    def structured_output(
        self, output_model: Any, prompt: Any, system_prompt: Any = None, **kwargs: Any
    ) -> Any:
        raise NotImplementedError

    def answer(self, messages: Any) -> list[dict[str, Any]]:
        """The next turn's content blocks."""
        return self.turns.pop(0) if self.turns else [{"text": "(script ended)"}]

    async def stream(
        self, messages: Any, tool_specs: Any = None, system_prompt: Any = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        blocks = self.answer(messages)
        yield {"messageStart": {"role": "assistant"}}
        for block in blocks:
            if "toolUse" in block:
                use = block["toolUse"]
                start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
                yield {"contentBlockStart": {"start": start}}
                yield {"contentBlockDelta": {"delta": {"toolUse": {"input": json.dumps(use["input"])}}}}
            else:
                yield {"contentBlockStart": {"start": {}}}
                yield {"contentBlockDelta": {"delta": {"text": block["text"]}}}
            yield {"contentBlockStop": {}}
        stop = "tool_use" if any("toolUse" in b for b in blocks) else "end_turn"
        yield {"messageStop": {"stopReason": stop}}
        yield {
            "metadata": {
                "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
                "metrics": {"latencyMs": 1},
            }
        }


@pytest.fixture
def scripted() -> type[ScriptedModel]:
    return ScriptedModel

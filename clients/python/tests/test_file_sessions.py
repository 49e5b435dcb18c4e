"""Moving in and out of the SDK's FileSessionManager layout with the binary."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from conftest import Service, binary
from strands import Agent
from strands.session import FileSessionManager

from strands_session_backend import SessionBackendSessionManager


def cli(service: Service, *args: str) -> str:
    env = {"DATABASE_URL": service.database_url, "LOG_LEVEL": "warn"}
    done = subprocess.run([binary(), *args], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_then_resume_from_the_service_and_export_then_resume_from_files(
    service: Service, sid: str, scripted: Any, tmp_path: Path
) -> None:
    files = tmp_path / "sdk"
    first = Agent(
        agent_id="assistant",
        model=scripted([[{"text": "one"}], [{"text": "two"}]]),
        session_manager=FileSessionManager(sid, storage_dir=str(files)),
        callback_handler=None,
    )
    first("hello")
    first.state.set("plan", {"step": 2})
    first("again")

    imported = cli(service, "import", "file-sessions", str(files))
    assert "sessions: 1 created" in imported and "messages: 4 created" in imported, imported
    again = cli(service, "import", "file-sessions", str(files))
    assert (
        "sessions: 0 created, 1 already present" in again
        and "messages: 0 created, 4 already present" in again
    )

    # An agent resumes from the service.
    resumed = Agent(
        agent_id="assistant",
        model=scripted([[{"text": "three"}]]),
        session_manager=SessionBackendSessionManager(sid, base_url=service.url),
        callback_handler=None,
    )
    assert resumed.messages == first.messages
    assert resumed.state.get() == first.state.get()
    resumed("more")

    # Exported, the SDK's own FileSessionManager resumes from the files.
    out = tmp_path / "exported"
    exported = cli(service, "export", "file-sessions", str(out), "--session", sid)
    assert "exported 1 sessions, 1 agents, 6 messages" in exported, exported
    back = Agent(
        agent_id="assistant",
        model=scripted([]),
        session_manager=FileSessionManager(sid, storage_dir=str(out)),
        callback_handler=None,
    )
    assert back.messages == resumed.messages
    assert back.state.get() == resumed.state.get()

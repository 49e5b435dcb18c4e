"""``SessionBackendServer``: the service itself, started from Python for notebooks and tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import httpx

from .errors import SessionBackendError

#: What the binary writes to standard output once it listens.
ANNOUNCEMENT = "session-backend listening on "


def find_binary() -> str:
    """The ``session-backend`` program: ``SESSION_BACKEND_BIN``, the one the ``session-backend``
    wheel installed (``pip install "strands-session-backend[server]"``), or one on the PATH."""
    configured = os.environ.get("SESSION_BACKEND_BIN")
    if configured:
        return configured
    try:
        from session_backend import binary  # type: ignore[import-not-found, unused-ignore]

        return str(binary())
    except ImportError:
        pass
    found = shutil.which("session-backend")
    if found:
        return found
    raise SessionBackendError(
        'no session-backend program: pip install "strands-session-backend[server]", '
        "or set SESSION_BACKEND_BIN to the binary"
    )


class SessionBackendServer:
    """Runs the service on this machine, on an embedded SQLite database, until stopped.

    ``with SessionBackendServer() as server:`` starts it on a port the system chooses and
    waits until it is ready; ``server.url`` is its base URL. Without ``database`` the
    sessions live in a temporary directory removed on :meth:`stop`; with a path they are
    kept in that SQLite file. ``env`` adds configuration (``SESSION_BACKEND_*`` variables).
    The server's log is kept in :attr:`log` (a file) and shown when it fails to start.
    """

    def __init__(
        self,
        database: str | os.PathLike[str] | None = None,
        *,
        binary: str | None = None,
        env: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        startup_timeout: float = 30.0,
    ) -> None:
        self._database = Path(database) if database is not None else None
        self._binary = binary
        self._env = dict(env or {})
        self._host = host
        self._startup_timeout = startup_timeout
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[str] | None = None
        self.url = ""
        self.log: Path | None = None

    def start(self) -> SessionBackendServer:
        """Starts the server and waits until it answers ready; returns ``self``."""
        if self._process is not None:
            raise SessionBackendError("the server is already running")
        self._workdir = tempfile.TemporaryDirectory(prefix="session-backend-")
        workdir = Path(self._workdir.name)
        database = self._database or workdir / "sessions.db"
        self.log = workdir / "server.log"
        environment = {
            **os.environ,
            "SESSION_BACKEND_DATABASE__URL": f"sqlite://{database.resolve()}?mode=rwc",
            "SESSION_BACKEND_LOG__LEVEL": "warn",
            **self._env,
        }
        command = [self._binary or find_binary(), "serve", "--host", self._host, "--port", "0"]
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=log, env=environment, text=True, cwd=workdir
            )
        try:
            self.url = self._announced_url()
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _announced_url(self) -> str:
        """The URL from the line the binary writes once it listens."""
        assert self._process is not None and self._process.stdout is not None
        output = self._process.stdout
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(output.readline()), daemon=True)
        reader.start()
        reader.join(self._startup_timeout)
        line = lines[0].strip() if lines else ""
        if not line.startswith(ANNOUNCEMENT):
            raise SessionBackendError(f"the server did not start:\n{self._log_text()}")
        return line.removeprefix(ANNOUNCEMENT)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self._process is None or self._process.poll() is not None:
                break
            time.sleep(0.05)
        raise SessionBackendError(f"the server did not become ready:\n{self._log_text()}")

    def _log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""

    def stop(self) -> None:
        """Stops the server (SIGTERM: it finishes the requests in flight) and removes its
        temporary directory."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdout is not None:
                process.stdout.close()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> SessionBackendServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

"""``SessionBackendSessionManager``: one line to persist an agent in the service."""

from __future__ import annotations

import weakref
from typing import Any

from strands.session.repository_session_manager import RepositorySessionManager
from strands.types.session import Session, SessionType

from ._http import DEFAULT_RETRIES, DEFAULT_TIMEOUT
from .lease import LeaseKeeper, default_holder
from .repository import SessionBackendRepository


class SessionBackendSessionManager(RepositorySessionManager):
    """A ``RepositorySessionManager`` over :class:`SessionBackendRepository`.

    ``Agent(session_manager=SessionBackendSessionManager("s1", base_url=URL))``
    restores the agent from session ``s1`` (creating it if new) and persists
    every message and state change as it happens.

    With ``lease=True`` this worker becomes the session's only writer: the lease
    is taken here, before the history is loaded, and renewed from a daemon thread
    every third of ``lease_ttl`` seconds; every write carries its token. Another
    worker holding it raises :class:`~strands_session_backend.SessionLeaseError`
    naming the holder and when its lease ends (``lease_wait`` seconds of waiting
    for it first, if given). :meth:`close` (or the manager being collected) releases
    it. Without ``lease`` nothing changes.

    ``session_metadata`` and ``session_ttl`` (seconds after each write; 0 for none) are
    set on the session, new or not, once it is loaded. Without ``base_url`` the service
    is ``SESSION_BACKEND_URL``.
    """

    def __init__(
        self,
        session_id: str,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        lease: bool = False,
        lease_ttl: float = 30.0,
        lease_holder: str | None = None,
        lease_wait: float = 0.0,
        session_metadata: dict[str, Any] | None = None,
        session_ttl: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.repository = SessionBackendRepository(base_url, api_key, timeout=timeout, retries=retries)
        self.lease: LeaseKeeper | None = None
        if lease:
            keeper = LeaseKeeper(
                self.repository, session_id, lease_holder or default_holder(), lease_ttl, lease_wait
            )
            # The session must exist to be leased; it is made as the SDK makes it.
            self.repository.create_session(Session(session_id=session_id, session_type=SessionType.AGENT))
            keeper.acquire()
            self.lease = keeper
            # Collected: released on a thread of its own (not the collector's).
            self._release = weakref.finalize(self, keeper.release_in_background)
        super().__init__(session_id=session_id, session_repository=self.repository, **kwargs)
        if session_metadata is not None or session_ttl is not None:
            self.repository.update_session(session_id, metadata=session_metadata, ttl_seconds=session_ttl)

    def close(self) -> None:
        """Releases the session's lease, if this manager holds one, before returning."""
        if self.lease is not None and self._release.detach() is not None:
            self.lease.release()

    def __enter__(self) -> SessionBackendSessionManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""``SessionBackendSessionManager``: one line to persist an agent in the service."""

from __future__ import annotations

from typing import Any

from strands.session.repository_session_manager import RepositorySessionManager

from ._http import DEFAULT_RETRIES, DEFAULT_TIMEOUT
from .repository import SessionBackendRepository


class SessionBackendSessionManager(RepositorySessionManager):
    """A ``RepositorySessionManager`` over :class:`SessionBackendRepository`.

    ``Agent(session_manager=SessionBackendSessionManager("s1", base_url=URL))``
    restores the agent from session ``s1`` (creating it if new) and persists
    every message and state change as it happens.
    """

    def __init__(
        self,
        session_id: str,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        **kwargs: Any,
    ) -> None:
        self.repository = SessionBackendRepository(base_url, api_key, timeout=timeout, retries=retries)
        super().__init__(session_id=session_id, session_repository=self.repository, **kwargs)

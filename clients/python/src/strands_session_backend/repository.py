"""``SessionBackendRepository``: the SDK's ``SessionRepository`` over HTTP."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
from strands.session.session_repository import SessionRepository
from strands.types.session import Session, SessionAgent, SessionMessage

from ._http import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    Retrying,
    RetryPolicy,
    api_key_or_env,
    headers,
    segment,
    service_url,
)
from ._messages import session_messages
from .errors import NotFoundError, error_from, missing
from .lease import Lease

if TYPE_CHECKING:
    from strands.multiagent.base import MultiAgentBase

#: Messages per request when a listing follows ``next_offset``.
PAGE = 10_000


class SessionBackendRepository(SessionRepository):
    """Stores sessions, agents, messages and multi-agent state in the Session Backend service.

    Every replica pointing at the same service shares the same state. Reads of
    missing things return None; creating what another replica created first
    counts as success (409 means "it exists"); connection errors and 502/503/504
    are retried with jittered backoff.

    Failures raise the classes of :mod:`strands_session_backend.errors` (all of them
    ``SessionBackendError`` and the SDK's ``SessionException``).

    Args:
        base_url: The service's root, e.g. ``http://session-backend:8001``; default
            ``SESSION_BACKEND_URL``. One ending in ``/api/v1`` is refused (``ValueError``).
        api_key: Sent as ``Authorization: Bearer`` when the service requires keys; default
            ``SESSION_BACKEND_API_KEY``.
        timeout: Seconds per request.
        retries: Extra attempts after a connection error or a 502/503/504.
        client: An ``httpx.Client`` to use instead of a new one (its base URL is used).
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        client: httpx.Client | None = None,
    ) -> None:
        if client is None:
            client = httpx.Client(
                base_url=service_url(base_url), headers=headers(api_key_or_env(api_key)), timeout=timeout
            )
            # Agents never close their session manager: the client this
            # repository made is closed when the repository is collected.
            weakref.finalize(self, client.close)
        self._client = client
        self._http = Retrying(self._client, RetryPolicy(retries))
        # Sessions whose lease this worker holds, and its token.
        self._lease_tokens: dict[str, int] = {}

    def close(self) -> None:
        """Closes the pooled connections (also done when the repository is collected)."""
        self._client.close()

    def __enter__(self) -> SessionBackendRepository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing -------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        ok: tuple[int, ...],
        json: Any = None,
        params: dict[str, Any] | None = None,
        fenced: str | None = None,
        if_match: str | None = None,
    ) -> httpx.Response | None:
        """The response when its status is in ``ok``; None on 404; else raises (423:
        :class:`SessionLeaseError`). A write of session ``fenced``'s tree carries the lease
        token this worker holds for it, if any."""
        token = self._lease_tokens.get(fenced) if fenced is not None else None
        extra = {"Lease-Token": str(token)} if token is not None else {}
        if if_match is not None:
            extra["If-Match"] = if_match
        response = self._http.send(method, path, json=json, params=params, headers=extra)
        if response.status_code in ok:
            return response
        if response.status_code == 404:
            missing(response)
            return None
        raise error_from(response)

    @staticmethod
    def _session(session_id: str) -> str:
        return f"/api/v1/sessions/{segment(session_id)}"

    def _agent(self, session_id: str, agent_id: str) -> str:
        return f"{self._session(session_id)}/agents/{segment(agent_id)}"

    def _messages(self, session_id: str, agent_id: str) -> str:
        return f"{self._agent(session_id, agent_id)}/messages"

    def _multi_agent(self, session_id: str, multi_agent_id: str) -> str:
        return f"{self._session(session_id)}/multi-agents/{segment(multi_agent_id)}"

    def _require(self, response: httpx.Response | None, what: str) -> httpx.Response:
        if response is None:
            raise NotFoundError(f"{what} not found", status=404, kind="NotFoundError")
        return response

    # --- sessions ------------------------------------------------------------------

    def create_session(
        self,
        session: Session,
        *,
        metadata: dict[str, Any] | None = None,
        ttl_seconds: int | None = None,
        **kwargs: Any,
    ) -> Session:
        """Creates the session, with ``metadata`` and a time to live if given; one that exists
        already (another replica, a retry) is fine, and left as it is."""
        body = session.to_dict()
        if metadata is not None:
            body["metadata"] = metadata
        if ttl_seconds is not None:
            body["ttl_seconds"] = ttl_seconds
        self._require(self._call("POST", "/api/v1/sessions", ok=(201, 409), json=body), "session")
        return session

    def describe_session(self, session_id: str) -> SessionRecord | None:
        """The session as the service keeps it (metadata, time to live, ETag), or None."""
        response = self._call("GET", self._session(session_id), ok=(200,))
        return SessionRecord.of(response) if response else None

    def update_session(
        self,
        session_id: str,
        *,
        metadata: dict[str, Any] | None = None,
        ttl_seconds: int | None = None,
        session_type: str | None = None,
        if_match: str | None = None,
    ) -> SessionRecord:
        """Changes what is given (``metadata`` replaces the old; ``ttl_seconds`` 0 means no
        expiry); with ``if_match`` (a :attr:`SessionRecord.etag`) only if nobody wrote the
        session since, else :class:`PreconditionFailedError`. Raises :class:`NotFoundError`
        for a session that does not exist."""
        body = {"metadata": metadata, "ttl_seconds": ttl_seconds, "session_type": session_type}
        changes = {name: value for name, value in body.items() if value is not None}
        path = self._session(session_id)
        response = self._call("PUT", path, ok=(200,), json=changes, fenced=session_id, if_match=if_match)
        return SessionRecord.of(self._require(response, "session"))

    def read_session(self, session_id: str, **kwargs: Any) -> Session | None:
        """The session, or None."""
        response = self._call("GET", self._session(session_id), ok=(200,))
        return Session.from_dict(response.json()) if response else None

    def fork_session(
        self,
        session_id: str,
        new_session_id: str,
        *,
        agent_id: str | None = None,
        up_to_message_id: int | None = None,
    ) -> SessionRecord | BlobSession:
        """Copies the session (agents, messages, multi-agent states and its snapshot blobs,
        ``session/<id>/``) to ``new_session_id`` in one transaction; with ``agent_id`` and
        ``up_to_message_id``, that agent keeps its messages up to that id, and restoring the fork
        gives exactly those. A session kept only as snapshot blobs (``SnapshotSessionManager``'s)
        forks into one: the answer is then a :class:`BlobSession`. Raises :class:`NotFoundError`
        for a missing session or agent and :class:`ConflictError` when the new id is taken."""
        body: dict[str, Any] = {"session_id": new_session_id}
        if agent_id is not None or up_to_message_id is not None:
            body.update(agent_id=agent_id, up_to_message_id=up_to_message_id)
        response = self._require(
            self._call("POST", f"{self._session(session_id)}/fork", ok=(201,), json=body),
            "session or agent",
        )
        made = response.json()
        if "blobs" in made and "session_type" not in made:
            return BlobSession(session_id=made["session_id"], blobs=int(made["blobs"]))
        return SessionRecord.of(response)

    def delete_session(self, session_id: str, **kwargs: Any) -> bool:
        """Deletes the session and everything under it (its snapshot blobs, ``session/<id>/``,
        too); False when neither existed."""
        return self._call("DELETE", self._session(session_id), ok=(204,), fenced=session_id) is not None

    def list_sessions(
        self,
        *,
        session_type: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        updated_after: datetime | None = None,
        updated_before: datetime | None = None,
        id_prefix: str | None = None,
        page_size: int = 1000,
    ) -> list[Session]:
        """Every session the filters given let through (all of them hold; ``…_after`` and
        ``…_before`` are strict; datetimes need a time zone), newest first."""
        filters: dict[str, Any] = {
            "session_type": session_type,
            "created_after": created_after,
            "created_before": created_before,
            "updated_after": updated_after,
            "updated_before": updated_before,
            "id_prefix": id_prefix,
        }
        for name, value in filters.items():
            if isinstance(value, datetime):
                if value.tzinfo is None:
                    raise ValueError(f"{name} needs a time zone (e.g. datetime.now(timezone.utc))")
                filters[name] = value.isoformat()
        sessions: list[Session] = []
        page = 1
        while True:
            params = {name: value for name, value in filters.items() if value is not None}
            params.update(page=page, page_size=page_size)
            listing = self._require(
                self._call("GET", "/api/v1/sessions", ok=(200,), params=params), "sessions"
            )
            body = listing.json()
            sessions.extend(Session.from_dict(item) for item in body["sessions"])
            if not body["sessions"] or len(sessions) >= body["total"]:
                return sessions
            page += 1

    # --- agents --------------------------------------------------------------------

    def create_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        """Creates the agent; an existing one (another replica, a retry) is fine."""
        path = f"{self._session(session_id)}/agents"
        response = self._call("POST", path, ok=(201, 409), json=session_agent.to_dict(), fenced=session_id)
        self._require(response, "session")

    def read_agent(self, session_id: str, agent_id: str, **kwargs: Any) -> SessionAgent | None:
        """The agent, or None."""
        response = self._call("GET", self._agent(session_id, agent_id), ok=(200,))
        return SessionAgent.from_dict(response.json()) if response else None

    def update_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        """Replaces the agent's state, conversation-manager state and internal state."""
        body = session_agent.to_dict()
        body.pop("created_at", None)
        body.pop("updated_at", None)
        path = self._agent(session_id, session_agent.agent_id)
        self._require(self._call("PUT", path, ok=(200,), json=body, fenced=session_id), "agent")

    # --- messages ------------------------------------------------------------------

    def create_message(
        self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any
    ) -> None:
        """Appends a message; a retry of one that landed is accepted by the service."""
        path = self._messages(session_id, agent_id)
        response = self._call("POST", path, ok=(200, 201), json=session_message.to_dict(), fenced=session_id)
        self._require(response, "agent")

    def read_message(
        self, session_id: str, agent_id: str, message_id: int, **kwargs: Any
    ) -> SessionMessage | None:
        """The message, or None."""
        response = self._call("GET", f"{self._messages(session_id, agent_id)}/{message_id}", ok=(200,))
        return SessionMessage.from_dict(response.json()) if response else None

    def update_message(
        self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any
    ) -> None:
        """Replaces a message (redaction)."""
        body = session_message.to_dict()
        update = {"message": body["message"], "redact_message": body.get("redact_message")}
        path = f"{self._messages(session_id, agent_id)}/{session_message.message_id}"
        self._require(self._call("PUT", path, ok=(200,), json=update, fenced=session_id), "message")

    def list_messages(
        self, session_id: str, agent_id: str, limit: int | None = None, offset: int = 0, **kwargs: Any
    ) -> list[SessionMessage]:
        """Messages from ``offset`` on, oldest first: ``limit`` of them, or all of them."""
        messages: list[SessionMessage] = []
        path = self._messages(session_id, agent_id)
        while limit is None or len(messages) < limit:
            want = PAGE if limit is None else min(PAGE, limit - len(messages))
            params = {"offset": offset, "limit": want}
            response = self._call("GET", path, ok=(200,), params=params)
            if response is None:
                return messages
            body = response.json()
            messages.extend(session_messages(body["messages"], response.content))
            next_offset = body.get("next_offset")
            if next_offset is None or not body["messages"]:
                break
            offset = next_offset
        return messages

    # --- multi-agent state ---------------------------------------------------------

    def create_multi_agent(self, session_id: str, multi_agent: MultiAgentBase, **kwargs: Any) -> None:
        """Stores a Graph's or Swarm's state; an existing one (another replica, a retry) is fine."""
        body = {"multi_agent_id": multi_agent.id, "state": multi_agent.serialize_state()}
        path = f"{self._session(session_id)}/multi-agents"
        self._require(self._call("POST", path, ok=(201, 409), json=body, fenced=session_id), "session")

    def read_multi_agent(self, session_id: str, multi_agent_id: str, **kwargs: Any) -> dict[str, Any] | None:
        """The orchestrator's state, or None."""
        response = self._call("GET", self._multi_agent(session_id, multi_agent_id), ok=(200,))
        return response.json()["state"] if response else None

    def update_multi_agent(self, session_id: str, multi_agent: MultiAgentBase, **kwargs: Any) -> None:
        """Replaces the orchestrator's state."""
        body = {"state": multi_agent.serialize_state()}
        path = self._multi_agent(session_id, multi_agent.id)
        self._require(self._call("PUT", path, ok=(200,), json=body, fenced=session_id), "multi-agent state")

    # --- session leases --------------------------------------------------------------

    def acquire_lease(
        self, session_id: str, holder: str, ttl_seconds: int, *, token: int | None = None
    ) -> Lease:
        """Takes the session's lease (``token`` None) or renews the one whose token is ``token``.

        Raises :class:`SessionLeaseError` when another worker holds it (``LeaseHeldError``) or a
        newer grant replaced ``token`` (``LeaseLostError``), :class:`NotFoundError` when the
        session does not exist.
        """
        body = {"holder": holder, "ttl_seconds": ttl_seconds}
        extra = {"Lease-Token": str(token)} if token is not None else None
        response = self._http.send("PUT", f"{self._session(session_id)}/lease", json=body, headers=extra)
        if response.status_code == 200:
            return lease_of(response.json())
        raise error_from(response)

    def read_lease(self, session_id: str) -> Lease | None:
        """The session's live lease, or None."""
        response = self._require(
            self._call("GET", f"{self._session(session_id)}/lease", ok=(200,)), "session"
        )
        body = response.json()
        return lease_of(body) if body else None

    def release_lease(self, session_id: str, token: int) -> None:
        """Gives the lease whose token is ``token`` back."""
        response = self._http.send(
            "DELETE", f"{self._session(session_id)}/lease", headers={"Lease-Token": str(token)}
        )
        if response.status_code not in (204, 404):
            raise error_from(response)

    def break_lease(self, session_id: str) -> None:
        """Breaks whatever lease the session has (an operator's call, for a worker that crashed)."""
        response = self._http.send("DELETE", f"{self._session(session_id)}/lease", params={"force": "true"})
        if response.status_code != 204:
            raise error_from(response)

    def hold_lease(self, session_id: str, token: int) -> None:
        """From now on, writes of the session's tree carry ``token``."""
        self._lease_tokens[session_id] = token

    def drop_lease(self, session_id: str) -> None:
        """Writes of the session's tree stop carrying a token."""
        self._lease_tokens.pop(session_id, None)


@dataclass(frozen=True)
class BlobSession:
    """A session kept only as snapshot blobs (no session row), as a fork made it.

    Attributes:
        blobs: How many blobs it has under ``session/<session_id>/``.
    """

    session_id: str
    blobs: int


@dataclass(frozen=True)
class SessionRecord:
    """A session as the service keeps it: the SDK's fields and the service's own.

    Attributes:
        ttl_seconds: Its time to live after each write, 0 for none.
        expires_at: When it expires (and everything under it with it), if it does.
        etag: Its version, for :meth:`SessionBackendRepository.update_session`'s ``if_match``.
    """

    session_id: str
    session_type: str
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, Any]
    ttl_seconds: int
    expires_at: datetime | None
    etag: str

    @classmethod
    def of(cls, response: httpx.Response) -> SessionRecord:
        body = response.json()
        expires = body.get("expires_at")
        return cls(
            session_id=body["session_id"],
            session_type=body["session_type"],
            created_at=datetime.fromisoformat(body["created_at"]),
            updated_at=datetime.fromisoformat(body["updated_at"]),
            metadata=body.get("metadata") or {},
            ttl_seconds=int(body.get("ttl_seconds") or 0),
            expires_at=datetime.fromisoformat(expires) if expires else None,
            etag=response.headers.get("etag", ""),
        )


def lease_of(body: dict[str, Any]) -> Lease:
    """A lease as the service shows it."""
    return Lease(
        holder=body["holder"],
        token=int(body["token"]),
        expires_at=datetime.fromisoformat(body["expires_at"]),
        ttl_ms=int(body["ttl_ms"]),
    )

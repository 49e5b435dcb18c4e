"""The exceptions: one class for each way a call fails, all of them
:class:`SessionBackendError`, and so the SDK's ``SessionException`` (the storage's are
the SDK's ``StorageError`` as well)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx
from strands.types.exceptions import SessionException


class SessionBackendError(SessionException):
    """The service refused or failed a request.

    Attributes:
        status: HTTP status, or None when the service could not be reached.
        kind: The error kind from the service's envelope (``NotFoundError``, ...).
        request_id: The request id the service logged the call under.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        kind: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.kind = kind
        self.request_id = request_id

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.kind:
            parts.append(f"kind={self.kind}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " | ".join(parts)


class InvalidRequestError(SessionBackendError):
    """The service refused what was sent (400, 413, 422): an invalid id, body or parameter."""


class UnauthorizedError(SessionBackendError):
    """No key, a key the service does not know (401), or one it refuses (403)."""


class NotFoundError(SessionBackendError):
    """What the call names does not exist (404)."""


class ConflictError(SessionBackendError):
    """It exists already, with other contents (409)."""


class PreconditionFailedError(SessionBackendError):
    """``If-Match`` named another version than the stored one (412): nothing was written."""


class SessionLeaseError(SessionBackendError):
    """The session's lease refused a call (423): another worker holds it
    (:class:`LeaseHeldError`), or this worker's token is no longer the current one
    (:class:`LeaseLostError`).

    Attributes:
        holder: Who holds (or last held) the lease.
        expires_at: When that lease ends (or ended), by the service's database clock.
    """

    def __init__(
        self,
        message: str,
        *,
        holder: str | None = None,
        expires_at: datetime | None = None,
        status: int | None = None,
        kind: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status=status, kind=kind, request_id=request_id)
        self.holder = holder
        self.expires_at = expires_at


class LeaseHeldError(SessionLeaseError):
    """Another worker holds the session's lease."""


class LeaseLostError(SessionLeaseError):
    """A newer grant replaced this worker's lease: its writes are refused."""


class RateLimitedError(SessionBackendError):
    """Too many requests (429), still so after the retries."""


class UnavailableError(SessionBackendError):
    """The service could not be reached, or answered 502/503/504, still so after the retries."""


BY_STATUS: dict[int, type[SessionBackendError]] = {
    400: InvalidRequestError,
    401: UnauthorizedError,
    403: UnauthorizedError,
    404: NotFoundError,
    409: ConflictError,
    412: PreconditionFailedError,
    413: InvalidRequestError,
    422: InvalidRequestError,
    429: RateLimitedError,
    502: UnavailableError,
    503: UnavailableError,
    504: UnavailableError,
}


def envelope(response: httpx.Response) -> Mapping[str, Any] | None:
    """The service's error envelope (``detail``), or None when the body is not one."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return None
    return detail if isinstance(detail, Mapping) and isinstance(detail.get("error"), str) else None


def error_from(response: httpx.Response) -> SessionBackendError:
    """The exception for a failed response, carrying the envelope's message, kind and request id."""
    detail = envelope(response) or {}
    kind, message = detail.get("error"), detail.get("message")
    message = message or f"{response.request.method} {response.request.url.path} failed"
    request_id = response.headers.get("x-request-id")
    if response.status_code == 423:
        return lease_error(message, detail, kind=kind, request_id=request_id)
    error = BY_STATUS.get(response.status_code, SessionBackendError)
    return error(message, status=response.status_code, kind=kind, request_id=request_id)


def missing(response: httpx.Response) -> None:
    """Passes the service's 404 of something that does not exist; raises for a 404 that says
    the URL is no route of the service (a wrong ``base_url``)."""
    detail = envelope(response)
    if detail is not None and detail.get("message") != "no such route":
        return
    url = response.request.url
    raise NotFoundError(
        f"{url} is not a route of the Session Backend service: is base_url the service's root "
        "(e.g. http://localhost:8001)?",
        status=404,
        kind=detail.get("error") if detail else None,
        request_id=response.headers.get("x-request-id"),
    )


def lease_error(
    message: str, detail: Mapping[str, Any], *, kind: str | None, request_id: str | None
) -> SessionLeaseError:
    """A 423: who holds the lease and until when, in the message too."""
    holder: str | None = None
    expires_at: datetime | None = None
    lease = detail.get("lease")
    if isinstance(lease, Mapping):
        holder = lease.get("holder") or None
        try:
            expires_at = datetime.fromisoformat(lease["expires_at"]) if lease.get("expires_at") else None
        except (TypeError, ValueError):
            expires_at = None
    if kind == "LeaseHeldError":
        until = expires_at.isoformat() if expires_at else "?"
        return LeaseHeldError(
            f"session lease held by `{holder}` until {until}: {message}",
            holder=holder,
            expires_at=expires_at,
            status=423,
            kind=kind,
            request_id=request_id,
        )
    taken = "this worker's session lease was taken over" + (f" by `{holder}`" if holder else "")
    return LeaseLostError(
        f"{taken}: {message}",
        holder=holder,
        expires_at=expires_at,
        status=423,
        kind=kind,
        request_id=request_id,
    )

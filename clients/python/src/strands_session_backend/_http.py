"""HTTP plumbing shared by the repository and the storage: URLs, retries, errors."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from strands.types.exceptions import SessionException, StorageError

DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 3
RETRY_STATUSES = frozenset({429, 502, 503, 504})
BACKOFF_BASE = 0.1
BACKOFF_CAP = 2.0
RETRY_AFTER_CAP = 10.0


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


class SessionBackendStorageError(SessionBackendError, StorageError):
    """A storage call failed; a ``StorageError`` for the SDK as well."""


def segment(value: str) -> str:
    """Percent-encodes one path segment (an id): every reserved character, ``/`` included.

    ``.`` and ``..`` are refused here: no id may be one, and in a URL they
    would name another path.
    """
    if value in (".", ".."):
        raise SessionBackendError(f"invalid id `{value}`", kind="ValidationError")
    return quote(value, safe="")


def key_path(key: str) -> str:
    """A storage key, normalised as the SDK's own backends do, as one path segment.

    Its ``/`` are encoded too (the service decodes them), so no URL library
    can read ``.`` parts of a key as "this directory" and address another key.
    Keys the SDK refuses (empty, ``\\``, a ``..`` part) raise ``StorageError``.
    """
    if "\\" in key:
        raise SessionBackendStorageError(
            f"invalid storage key `{key}`: backslashes are not allowed", kind="ValidationError"
        )
    normalized = "/".join(part for part in key.split("/") if part)
    if not normalized or ".." in normalized.split("/"):
        raise SessionBackendStorageError(
            f"invalid storage key `{key}`: empty or with a `..` part", kind="ValidationError"
        )
    encoded = quote(normalized, safe="")
    return "%2E" if encoded == "." else encoded


def error_from(
    response: httpx.Response, error: type[SessionBackendError] = SessionBackendError
) -> SessionBackendError:
    """The exception for a failed response, carrying the envelope's message, kind and request id."""
    kind = message = None
    try:
        detail = response.json().get("detail")
        if isinstance(detail, Mapping):
            kind, message = detail.get("error"), detail.get("message")
    except ValueError:
        pass
    return error(
        message or f"{response.request.method} {response.request.url.path} failed",
        status=response.status_code,
        kind=kind,
        request_id=response.headers.get("x-request-id"),
    )


@dataclass(frozen=True)
class RetryPolicy:
    """When a request is sent again: after a connection error, 429 or 502/503/504, at most ``retries``
    more times, waiting the service's ``Retry-After`` (429, capped) or a full-jitter exponential backoff.

    Every call of the clients is idempotent, so any of them may be retried. The synchronous and the
    async client both ask this one policy.
    """

    retries: int = DEFAULT_RETRIES

    def wait(self, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None when this outcome stands.

        ``response`` is None when the attempt failed to reach the service.
        """
        if attempt >= self.retries:
            return None
        if response is None:
            return backoff(attempt)
        if response.status_code not in RETRY_STATUSES:
            return None
        if response.status_code == 429:
            try:
                return min(RETRY_AFTER_CAP, max(0.0, float(response.headers.get("retry-after", ""))))
            except ValueError:
                pass
        return backoff(attempt)


def backoff(attempt: int) -> float:
    """Full-jitter exponential backoff: a random wait up to base * 2^attempt, capped."""
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * (2**attempt)))


def headers(api_key: str | None) -> dict[str, str]:
    """Headers every request carries."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


@dataclass
class Retrying:
    """Sends requests with one pooled client, as the :class:`RetryPolicy` says."""

    client: httpx.Client
    policy: RetryPolicy

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The response to the request; the last one if every attempt was retried."""
        attempt = 0
        while True:
            response: httpx.Response | None = None
            failure: httpx.TransportError | None = None
            try:
                response = self.client.request(method, path, **kwargs)
            except httpx.TransportError as err:
                failure = err
            wait = self.policy.wait(attempt, response)
            if wait is not None:
                time.sleep(wait)
                attempt += 1
            elif response is None:
                raise SessionBackendError(f"{method} {path}: {failure}") from failure
            else:
                return response

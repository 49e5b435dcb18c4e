"""HTTP plumbing shared by the repository and the storage: the service's URL and key, paths,
retries."""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from ._wire import ConnectionPool
from .errors import InvalidRequestError, UnavailableError

DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 3
RETRY_STATUSES = frozenset({429, 502, 503, 504})
BACKOFF_BASE = 0.1
BACKOFF_CAP = 2.0
RETRY_AFTER_CAP = 10.0


def segment(value: str) -> str:
    """Percent-encodes one path segment (an id): every reserved character, ``/`` included.

    ``.`` and ``..`` are refused here: no id may be one, and in a URL they
    would name another path.
    """
    if value in (".", ".."):
        raise InvalidRequestError(f"invalid id `{value}`", kind="ValidationError")
    return quote(value, safe="")


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


#: Where the clients find the service, and its key, when they are not given.
URL_VARIABLE = "SESSION_BACKEND_URL"
KEY_VARIABLE = "SESSION_BACKEND_API_KEY"


def service_url(base_url: str | None) -> str:
    """The service's root URL: ``base_url``, else ``SESSION_BACKEND_URL``; refused when it
    is missing or names the API's path (``…/api/v1``) rather than the root."""
    url = base_url if base_url is not None else os.environ.get(URL_VARIABLE, "")
    url = url.strip().rstrip("/")
    if not url:
        raise ValueError(f"no service URL: pass base_url or set {URL_VARIABLE} (e.g. http://localhost:8001)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base_url `{url}` is not an http(s) URL such as http://localhost:8001")
    if parts.path.rstrip("/").endswith("/api/v1") or "/api/v1/" in parts.path:
        root = url[: url.index("/api/v1")]
        raise ValueError(
            f"base_url `{url}` names the API's path; give the service's root, `{root}` "
            "(the clients add /api/v1 themselves)"
        )
    return url


def api_key_or_env(api_key: str | None) -> str | None:
    """``api_key``, else ``SESSION_BACKEND_API_KEY``, else None (a service without keys)."""
    return api_key if api_key is not None else (os.environ.get(KEY_VARIABLE) or None)


def headers(api_key: str | None) -> dict[str, str]:
    """Headers every request carries."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


@dataclass
class Retrying:
    """Sends requests with one pooled client, as the :class:`RetryPolicy` says."""

    #: The repository's ``httpx.Client``, or the storage's lighter pool.
    client: httpx.Client | ConnectionPool
    policy: RetryPolicy

    def send(
        self, method: str, path: str, *, stop: threading.Event | None = None, **kwargs: Any
    ) -> httpx.Response:
        """The response to the request; the last one if every attempt was retried. Once ``stop``
        is set (its caller was cancelled), no further attempt is made."""
        attempt = 0
        while True:
            response: httpx.Response | None = None
            failure: httpx.TransportError | None = None
            try:
                response = self.client.request(method, path, **kwargs)
            except httpx.TransportError as err:
                failure = err
            wait = self.policy.wait(attempt, response)
            if wait is not None and stop is not None and stop.wait(wait):
                raise UnavailableError(f"{method} {path}: cancelled before attempt {attempt + 2}")
            if wait is not None:
                if stop is None:
                    time.sleep(wait)
                attempt += 1
            elif response is None:
                raise UnavailableError(f"{method} {path}: {failure}") from failure
            else:
                return response

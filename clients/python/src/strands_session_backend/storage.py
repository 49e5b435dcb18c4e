"""``SessionBackendStorage``: the SDK's async ``Storage`` protocol over the service's blob store."""

from __future__ import annotations

import asyncio
import base64
import builtins
import contextvars
import copy
import functools
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
from strands.storage import storage as sdk_storage
from strands.types.exceptions import StorageError

from ._http import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    Retrying,
    RetryPolicy,
    api_key_or_env,
    headers,
    service_url,
)
from ._wire import ConnectionPool
from .errors import InvalidRequestError, SessionBackendError, error_from, missing

if TYPE_CHECKING:
    from strands.storage.storage import StorageSearchResult

ROOT = "/api/v1/storage"

#: Connections the storage keeps to the service: as many calls at once.
MAX_CONNECTIONS = 32
#: The threads the storage's calls run on, shared by every storage and event loop: as many as
#: there are pooled connections, and alive across the SDK's short-lived loops (whose own
#: default executors would start threads anew for each of them).
WORKERS = ThreadPoolExecutor(max_workers=MAX_CONNECTIONS, thread_name_prefix="session-backend-storage")


class SessionBackendStorageError(SessionBackendError, StorageError):
    """A storage call failed; a ``StorageError`` for the SDK as well. Each failure raises the
    class of :mod:`strands_session_backend.errors` for it (``NotFoundError``, …) made a
    ``SessionBackendStorageError`` too."""


_STORAGE_CLASSES: dict[type[SessionBackendError], type[SessionBackendStorageError]] = {}


def storage_class(error: type[SessionBackendError]) -> type[SessionBackendStorageError]:
    """``error``'s class, a ``SessionBackendStorageError`` too (made once per class)."""
    if issubclass(error, SessionBackendStorageError):
        return error
    made = _STORAGE_CLASSES.get(error)
    if made is None:
        made = type(error.__name__, (error, SessionBackendStorageError), {"__doc__": error.__doc__})
        _STORAGE_CLASSES[error] = made
    return made


def as_storage_error(error: SessionBackendError) -> SessionBackendStorageError:
    """The same failure, raised as a storage error."""
    converted = storage_class(type(error)).__new__(storage_class(type(error)))
    converted.__dict__.update(error.__dict__)
    converted.args = error.args
    return converted


def key_path(key: str) -> str:
    """A storage key, normalised as the SDK's own backends do, as one path segment.

    Its ``/`` are encoded too (the service decodes them), so no URL library
    can read ``.`` parts of a key as "this directory" and address another key.
    Keys the SDK refuses (empty, ``\\``, a ``..`` part) raise ``StorageError``.
    """
    if "\\" in key:
        raise as_storage_error(
            InvalidRequestError(
                f"invalid storage key `{key}`: backslashes are not allowed", kind="ValidationError"
            )
        )
    normalized = "/".join(part for part in key.split("/") if part)
    if not normalized or ".." in normalized.split("/"):
        raise as_storage_error(
            InvalidRequestError(
                f"invalid storage key `{key}`: empty or with a `..` part", kind="ValidationError"
            )
        )
    encoded = quote(normalized, safe="")
    return "%2E" if encoded == "." else encoded


class SessionBackendStorage:
    """Byte values under keys, shared by every replica (``SnapshotSessionManager``, ``Agent(storage=...)``).

    Keys are normalised by the service exactly as the SDK's own backends do;
    ``search`` runs on the service (full-text ranking) instead of reading
    every value.

    Args:
        base_url: The service's root, e.g. ``http://session-backend:8001``; default
            ``SESSION_BACKEND_URL``.
        api_key: Sent as ``Authorization: Bearer`` when the service requires keys; default
            ``SESSION_BACKEND_API_KEY``.
        timeout: Seconds per request (a large value may take longer in total; this bounds each pause).
        retries: Extra attempts after a connection error or a 502/503/504 (every call is idempotent).
    """

    #: Keys per listing request (the service allows up to 10,000).
    list_page: int = 10_000
    #: The keys this view sees are under this prefix ("" or ending in "/"): :meth:`namespace`.
    _prefix: str = ""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        # One pooled client for every event loop: the SDK runs the storage
        # calls of a synchronous agent each in a loop of its own, and a
        # client per loop paid a new connection for every save. Calls run
        # on the shared WORKERS, so they never block the loop they come from.
        client = ConnectionPool(
            service_url(base_url), headers(api_key_or_env(api_key)), timeout=timeout, size=MAX_CONNECTIONS
        )
        self._pool = client
        self._http = Retrying(client, RetryPolicy(retries))
        # Closed once nothing uses it: ``namespace`` views share it, and the
        # SDK's stores often keep only a view.
        weakref.finalize(self._http, client.close)

    def close(self) -> None:
        """Closes the pooled connections (also done when the storage is collected)."""
        self._pool.close()

    async def aclose(self) -> None:
        """:meth:`close`, for async code."""
        self.close()

    async def _send(
        self, method: str, path: str, *, ok: tuple[int, ...], **kwargs: Any
    ) -> httpx.Response | None:
        """The response when its status is in ``ok``; None on 404; else raises ``StorageError``."""
        try:
            # A cancelled caller stops the retries still to come (the thread cannot be interrupted).
            stop = threading.Event()
            call = functools.partial(self._http.send, method, path, stop=stop, **kwargs)
            context = contextvars.copy_context()
            try:
                response = await asyncio.get_running_loop().run_in_executor(WORKERS, context.run, call)
            except asyncio.CancelledError:
                stop.set()
                raise
        except SessionBackendError as failed:
            raise as_storage_error(failed) from failed.__cause__
        if response.status_code in ok:
            return response
        if response.status_code == 404:
            try:
                missing(response)
            except SessionBackendError as wrong_url:
                raise as_storage_error(wrong_url) from None
            return None
        raise as_storage_error(error_from(response))

    def namespace(self, prefix: str) -> SessionBackendStorage:
        """A view of the keys under ``prefix`` (the keys it takes and gives are relative to
        it), sharing this storage's connections. Its :meth:`search` asks the service for
        that prefix only, so no other key can crowd a namespace's matches out (the SDK's
        generic view filters the first hits of a global search). The SDK's memory stores
        and snapshot manager use this when given the storage."""
        normalized = "/".join(part for part in prefix.split("/") if part)
        view = copy.copy(self)
        view._prefix = f"{self._prefix}{normalized}/" if normalized else self._prefix
        # The SDK's mark for "already scoped": its stores then use the view as it is.
        sentinel = getattr(sdk_storage, "_NAMESPACED", None)
        if sentinel is not None:
            view._namespaced = sentinel  # type: ignore[attr-defined]
        return view

    def _relative(self, key: str) -> str:
        return key[len(self._prefix) :] if key.startswith(self._prefix) else key

    async def write(self, key: str, data: bytes) -> None:
        """Stores ``data`` under ``key``, overwriting."""
        path = f"{ROOT}/{key_path(self._prefix + key)}"
        await self._send("PUT", path, ok=(204,), content=bytes(data))

    async def read(self, key: str) -> bytes | None:
        """The bytes under ``key``, or None."""
        response = await self._send("GET", f"{ROOT}/{key_path(self._prefix + key)}", ok=(200,))
        return response.content if response is not None else None

    async def delete(self, key: str) -> None:
        """Deletes ``key``; a missing key is fine."""
        await self._send("DELETE", f"{ROOT}/{key_path(self._prefix + key)}", ok=(204,))

    async def list(self, query: str = "") -> builtins.list[str]:
        """Every key starting with ``query``, ascending."""
        keys: builtins.list[str] = []
        params: dict[str, Any] = {"prefix": self._prefix + query, "limit": self.list_page}
        while True:
            response = await self._send("GET", ROOT, ok=(200,), params=params)
            body = response.json() if response is not None else {"keys": [], "next_start_after": None}
            keys.extend(self._relative(key) for key in body["keys"])
            if body["next_start_after"] is None:
                return keys
            params["start_after"] = body["next_start_after"]

    async def search(
        self, query: str, *, prefix: str = "", limit: int = 1000, with_values: bool = True
    ) -> builtins.list[StorageSearchResult]:
        """Keys whose text values match any word of ``query``, best first (ranked on the service).

        With ``with_values`` (the default) the best hits carry their bytes as ``data``, as many
        as the service's per-answer budget allows (``storage.search_values_bytes``); the rest
        come with ``data=None``, so a caller such as the SDK's memory store reads only those.
        """
        from strands.storage.storage import StorageSearchResult

        params: dict[str, Any] = {"q": query, "prefix": self._prefix + prefix, "limit": limit}
        if with_values:
            params["with_values"] = "true"
        response = await self._send("GET", ROOT, ok=(200,), params=params)
        results = response.json()["results"] if response is not None else []
        return [
            StorageSearchResult(
                key=self._relative(hit["key"]),
                score=float(hit["score"]),
                data=base64.b64decode(hit["data"]) if "data" in hit else None,
            )
            for hit in results
        ]

    async def delete_prefix(self, prefix: str) -> int:
        """Deletes every key starting with ``prefix`` (not empty); how many there were."""
        params = {"prefix": self._prefix + prefix}
        response = await self._send("DELETE", ROOT, ok=(200,), params=params)
        return int(response.json()["deleted"]) if response is not None else 0

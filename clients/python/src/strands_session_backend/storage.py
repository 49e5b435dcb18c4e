"""``SessionBackendStorage``: the SDK's async ``Storage`` protocol over the service's blob store."""

from __future__ import annotations

import asyncio
import builtins
import weakref
from dataclasses import dataclass
from typing import Any

import httpx
from strands.storage.storage import StorageSearchResult

from ._http import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    RetryPolicy,
    SessionBackendStorageError,
    error_from,
    headers,
    key_path,
)

ROOT = "/api/v1/storage"


@dataclass
class _LoopClient:
    """The client of one event loop, and the task that closes it when the loop ends."""

    client: httpx.AsyncClient
    closer: asyncio.Task[None]


async def _close_at_loop_end(client: httpx.AsyncClient) -> None:
    """Waits until cancelled, as ``asyncio.run`` cancels what is left when its loop ends, then
    closes ``client`` there, so its connections never outlive their loop unclosed."""
    try:
        await asyncio.Event().wait()
    finally:
        await client.aclose()


class SessionBackendStorage:
    """Byte values under keys, shared by every replica (``SnapshotSessionManager``, ``Agent(storage=...)``).

    Keys are normalised by the service exactly as the SDK's own backends do;
    ``search`` runs on the service (full-text ranking) instead of reading
    every value.

    Args:
        base_url: The service, e.g. ``http://session-backend:8001``.
        api_key: Sent as ``Authorization: Bearer`` when the service requires keys.
        timeout: Seconds per request (a large value may take longer in total; this bounds each pause).
        retries: Extra attempts after a connection error or a 502/503/504 (every call is idempotent).
    """

    #: Keys per listing request (the service allows up to 10,000).
    list_page: int = 10_000

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = headers(api_key)
        self._timeout = timeout
        self._policy = RetryPolicy(retries)
        # An httpx.AsyncClient belongs to the event loop it was first used
        # in, and the SDK runs storage calls in more than one loop (a
        # synchronous agent call runs each in a loop of its own).
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient] = (
            weakref.WeakKeyDictionary()
        )

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        own = self._clients.get(loop)
        if own is None:
            client = httpx.AsyncClient(base_url=self._base_url, headers=self._headers, timeout=self._timeout)
            own = self._clients[loop] = _LoopClient(client, loop.create_task(_close_at_loop_end(client)))
        return own.client

    async def aclose(self) -> None:
        """Closes the connections of the running event loop's client."""
        own = self._clients.pop(asyncio.get_running_loop(), None)
        if own is not None:
            own.closer.cancel()
            await own.client.aclose()

    async def _send(
        self, method: str, path: str, *, ok: tuple[int, ...], **kwargs: Any
    ) -> httpx.Response | None:
        """The response when its status is in ``ok``; None on 404; else raises ``StorageError``."""
        attempt = 0
        while True:
            response: httpx.Response | None = None
            failure: httpx.TransportError | None = None
            try:
                response = await self._client().request(method, path, **kwargs)
            except httpx.TransportError as err:
                failure = err
            wait = self._policy.wait(attempt, response)
            if wait is not None:
                await asyncio.sleep(wait)
                attempt += 1
            elif response is None:
                raise SessionBackendStorageError(f"{method} {path}: {failure}") from failure
            elif response.status_code in ok:
                return response
            elif response.status_code == 404:
                return None
            else:
                raise error_from(response, SessionBackendStorageError)

    async def write(self, key: str, data: bytes) -> None:
        """Stores ``data`` under ``key``, overwriting."""
        await self._send("PUT", f"{ROOT}/{key_path(key)}", ok=(204,), content=bytes(data))

    async def read(self, key: str) -> bytes | None:
        """The bytes under ``key``, or None."""
        response = await self._send("GET", f"{ROOT}/{key_path(key)}", ok=(200,))
        return response.content if response is not None else None

    async def delete(self, key: str) -> None:
        """Deletes ``key``; a missing key is fine."""
        await self._send("DELETE", f"{ROOT}/{key_path(key)}", ok=(204,))

    async def list(self, query: str = "") -> builtins.list[str]:
        """Every key starting with ``query``, ascending."""
        keys: builtins.list[str] = []
        params: dict[str, Any] = {"prefix": query, "limit": self.list_page}
        while True:
            response = await self._send("GET", ROOT, ok=(200,), params=params)
            body = response.json() if response is not None else {"keys": [], "next_start_after": None}
            keys.extend(body["keys"])
            if body["next_start_after"] is None:
                return keys
            params["start_after"] = body["next_start_after"]

    async def search(
        self, query: str, *, prefix: str = "", limit: int = 1000
    ) -> builtins.list[StorageSearchResult]:
        """Keys whose text values match any word of ``query``, best first (ranked on the service)."""
        params: dict[str, Any] = {"q": query, "prefix": prefix, "limit": limit}
        response = await self._send("GET", ROOT, ok=(200,), params=params)
        results = response.json()["results"] if response is not None else []
        return [StorageSearchResult(key=hit["key"], score=float(hit["score"])) for hit in results]

    async def delete_prefix(self, prefix: str) -> int:
        """Deletes every key starting with ``prefix`` (not empty); how many there were."""
        response = await self._send("DELETE", ROOT, ok=(200,), params={"prefix": prefix})
        return int(response.json()["deleted"]) if response is not None else 0

"""Keep-alive connections to the service over the standard library's ``http.client``, for the
storage: its calls are many and small (a turn's snapshot, a memory's read), and httpx's request
path costs about four times the CPU of ``http.client``'s (0.3 ms against 0.07 ms a call), which
on an agent's host is most of a call's time and what concurrent calls queue for under the GIL.
Answers come back as ``httpx.Response`` and failures as ``httpx.TransportError``, so retries
and error handling stay those of the rest of the client."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

#: Failures of a kept connection the service closed meanwhile (its idle timeout, a restart).
STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class ConnectionPool:
    """Connections to one service, taken by one call at a time and kept for the next (at most
    ``size`` idle). Thread-safe; ``request`` has the part of ``httpx.Client.request`` the storage
    uses."""

    def __init__(self, base_url: str, headers: Mapping[str, str], timeout: float, size: int) -> None:
        parts = urlsplit(base_url)
        self._base_url = base_url
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        self._root = parts.path.rstrip("/")
        self._headers = dict(headers)
        self._timeout = timeout
        self._size = size
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        # The certificates httpx trusts (certifi, or SSL_CERT_FILE / SSL_CERT_DIR).
        self._tls = httpx.create_ssl_context() if self._https else None

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """Sends one request and reads its whole answer."""
        target = self._root + path + (f"?{urlencode(params)}" if params else "")
        headers = dict(self._headers)
        if content is not None:
            headers["Content-Type"] = "application/octet-stream"
        request = httpx.Request(method, self._base_url + target)
        connection, kept = self._take()
        while True:
            try:
                try:
                    connection.request(method, target, body=content, headers=headers)
                except STALE:
                    # The service may have answered before taking the whole body (a 401,
                    # a 413) and closed: that answer is the one to give.
                    reply = early_answer(connection)
                    if reply is None:
                        raise
                else:
                    reply = connection.getresponse()
                body = reply.read()
                break
            except STALE as closed:
                connection.close()
                if not kept:
                    message = f"the connection was closed: {closed}"
                    raise httpx.NetworkError(message, request=request) from closed
                # A kept connection the service had closed: once more on a new one.
                connection, kept = self._connect(), False
            except TimeoutError as slow:
                connection.close()
                raise httpx.TimeoutException(f"no answer within {self._timeout} s", request=request) from slow
            except (OSError, http.client.HTTPException) as failed:
                connection.close()
                raise httpx.NetworkError(str(failed) or type(failed).__name__, request=request) from failed
        if reply.will_close:
            connection.close()
        else:
            self._keep(connection)
        return httpx.Response(reply.status, headers=reply.getheaders(), content=body, request=request)

    def close(self) -> None:
        """Closes the kept connections (calls in flight close theirs when done)."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._size = 0
        for connection in idle:
            connection.close()

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._connect(), False

    def _keep(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self._size:
                self._idle.append(connection)
                return
        connection.close()

    def _connect(self) -> http.client.HTTPConnection:
        host, port, timeout = self._host, self._port, self._timeout
        if self._tls is not None:
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=self._tls)
        return http.client.HTTPConnection(host, port, timeout=timeout)


def early_answer(connection: http.client.HTTPConnection) -> http.client.HTTPResponse | None:
    """The answer the service sent before the request's body was all written, if it can be read."""
    try:
        reply = connection.getresponse()
    except (OSError, http.client.HTTPException):
        return None
    reply.will_close = True
    return reply

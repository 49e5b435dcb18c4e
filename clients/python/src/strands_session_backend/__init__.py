"""Strands Agents persistence over the Session Backend service.

- :class:`SessionBackendSessionManager`: an agent's session manager in one line.
- :class:`SessionBackendRepository`: the SDK's ``SessionRepository``.
- :class:`SessionBackendStorage`: the SDK's ``Storage``, for ``SnapshotSessionManager``
  and ``Agent(storage=...)`` (SDKs that have ``Storage``).
- :class:`SessionBackendServer`: the service on this machine, for notebooks and tests
  (``pip install "strands-session-backend[server]"``).
- The exceptions (:mod:`strands_session_backend.errors`): :class:`SessionBackendError` and one
  subclass for each way a call fails.

Without ``base_url`` the clients use ``SESSION_BACKEND_URL``, and without ``api_key``
``SESSION_BACKEND_API_KEY``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from .errors import (
    ConflictError,
    InvalidRequestError,
    LeaseHeldError,
    LeaseLostError,
    NotFoundError,
    PreconditionFailedError,
    RateLimitedError,
    SessionBackendError,
    SessionLeaseError,
    UnauthorizedError,
    UnavailableError,
)
from .lease import Lease
from .repository import BlobSession, SessionBackendRepository, SessionRecord
from .server import SessionBackendServer
from .session_manager import SessionBackendSessionManager

if TYPE_CHECKING:
    from .storage import SessionBackendStorage, SessionBackendStorageError

try:
    __version__ = version("strands-session-backend")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

#: Names whose module needs the SDK's ``Storage`` (strands-agents 1.48 and later): imported
#: when first used, so the message-log classes work with older SDKs.
_STORAGE = ("SessionBackendStorage", "SessionBackendStorageError")


def __getattr__(name: str) -> Any:
    if name in _STORAGE:
        try:
            from . import storage
        except ImportError as missing:
            raise ImportError(
                f"{name} needs the SDK's Storage protocol (strands-agents 1.48 or newer): {missing}"
            ) from missing
        return getattr(storage, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BlobSession",
    "ConflictError",
    "InvalidRequestError",
    "Lease",
    "LeaseHeldError",
    "LeaseLostError",
    "NotFoundError",
    "PreconditionFailedError",
    "RateLimitedError",
    "SessionBackendError",
    "SessionBackendRepository",
    "SessionBackendServer",
    "SessionBackendSessionManager",
    "SessionBackendStorage",
    "SessionBackendStorageError",
    "SessionLeaseError",
    "SessionRecord",
    "UnauthorizedError",
    "UnavailableError",
    "__version__",
]

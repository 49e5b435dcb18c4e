"""Strands Agents persistence over the Session Backend service.

- :class:`SessionBackendSessionManager`: an agent's session manager in one line.
- :class:`SessionBackendRepository`: the SDK's ``SessionRepository``.
- :class:`SessionBackendStorage`: the SDK's ``Storage``, for ``SnapshotSessionManager``
  and ``Agent(storage=...)``.
- :class:`SessionLeaseError`: another worker holds the session's lease (``lease=True``).
- :class:`SessionBackendServer`: the service on this machine, for notebooks and tests
  (``pip install "strands-session-backend[server]"``).
"""

from importlib.metadata import PackageNotFoundError, version

from ._http import SessionBackendError, SessionBackendStorageError
from .lease import Lease, SessionLeaseError
from .repository import SessionBackendRepository
from .server import SessionBackendServer
from .session_manager import SessionBackendSessionManager
from .storage import SessionBackendStorage

try:
    __version__ = version("strands-session-backend")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "Lease",
    "SessionBackendError",
    "SessionBackendRepository",
    "SessionBackendServer",
    "SessionBackendSessionManager",
    "SessionBackendStorage",
    "SessionBackendStorageError",
    "SessionLeaseError",
    "__version__",
]

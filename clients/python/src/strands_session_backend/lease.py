"""Session leases: one worker writes a session at a time.

The service grants a lease on a session (``PUT …/lease``) with a token that
every write of the session's tree then carries (``Lease-Token``); while the
lease lives, writes without it (another worker) are refused with 423, and
once another worker is granted the lease, writes with the old token are
refused too. :class:`LeaseKeeper` takes a lease, renews it from a daemon
thread, and releases it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .errors import SessionBackendError, SessionLeaseError

if TYPE_CHECKING:
    from .repository import SessionBackendRepository


@dataclass(frozen=True)
class Lease:
    """A session's lease as the service granted it."""

    holder: str
    token: int
    expires_at: datetime
    ttl_ms: int


def default_holder() -> str:
    """This worker's name: host, process and a random part (two managers in one process differ)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaseKeeper:
    """Holds one session's lease for a worker.

    :meth:`acquire` takes it, waiting at most ``wait`` seconds for another holder to let go.
    A daemon thread then renews it every third of ``ttl`` seconds (by elapsed time, so it
    works whatever event loops the SDK runs), and :meth:`release` (also run when the
    manager holding the keeper is collected) stops the thread and gives the lease back.
    The keeper never refers to the manager, so it never keeps it alive.
    """

    def __init__(
        self, repository: SessionBackendRepository, session_id: str, holder: str, ttl: float, wait: float
    ) -> None:
        if not 1 <= ttl <= 3600:
            raise ValueError(f"lease_ttl: 1 to 3600 seconds, not {ttl}")
        self._repository = repository
        self._session_id = session_id
        self._holder = holder
        self._ttl = int(ttl)
        self._wait = max(0.0, wait)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lease: Lease | None = None
        #: Why renewing stopped, if it did before :meth:`release`.
        self.lost: SessionBackendError | None = None

    def acquire(self) -> Lease:
        """Takes the lease (raising :class:`SessionLeaseError` naming the holder when another
        worker keeps it past the wait) and starts renewing it."""
        deadline = time.monotonic() + self._wait
        while True:
            try:
                lease = self._repository.acquire_lease(self._session_id, self._holder, self._ttl)
                break
            except SessionLeaseError as held:
                if held.kind == "LeaseHeldError" and held.holder == self._holder:
                    # Our own grant, whose answer was lost and the request retried.
                    own = self._repository.read_lease(self._session_id)
                    if own is not None and own.holder == self._holder:
                        lease = own
                        break
                left = deadline - time.monotonic()
                if held.kind != "LeaseHeldError" or left <= 0:
                    raise
                until_free = (held.expires_at.timestamp() - time.time()) if held.expires_at else 1.0
                time.sleep(min(left, max(0.05, min(until_free, 1.0))))
        self.lease = lease
        self._repository.hold_lease(self._session_id, lease.token)
        self._thread = threading.Thread(target=self._renew, name=f"lease-{self._session_id}", daemon=True)
        self._thread.start()
        return lease

    def _renew(self) -> None:
        period = self._ttl / 3
        next_at = time.monotonic() + period
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            lease = self.lease
            if lease is None:
                return
            try:
                self.lease = self._repository.acquire_lease(
                    self._session_id, self._holder, self._ttl, token=lease.token
                )
                next_at = time.monotonic() + period
            except SessionLeaseError as lost:
                # Another worker has it now: stop; writes will say so.
                self.lost = lost
                return
            except SessionBackendError as failed:
                if failed.status == 404:
                    # The session is gone, and its lease with it.
                    self.lost = failed
                    return
                # The service briefly unreachable: try again soon, within the lease.
                next_at = time.monotonic() + min(1.0, period)

    def release_in_background(self) -> None:
        """:meth:`release` on a thread of its own, for a finalizer: whichever thread collects
        the manager (an event loop's, say) is not held up by the calls."""
        threading.Thread(target=self.release, name=f"lease-release-{self._session_id}").start()

    def release(self) -> None:
        """Stops renewing and gives the lease back (quietly, if it was lost meanwhile)."""
        self._stop.set()
        lease, self.lease = self.lease, None
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        if lease is None:
            return
        self._repository.drop_lease(self._session_id)
        with contextlib.suppress(SessionBackendError):
            self._repository.release_lease(self._session_id, lease.token)

"""A worker the fleet test pauses (SIGSTOP) while it holds a session's lease.

``python paused_worker.py URL SESSION`` takes the lease for ``paused-worker`` with a
2-second TTL, prints ``leased``, and waits for a line on standard input. The test
stops the process, lets the lease expire and another worker take it, resumes the
process and sends the line: the worker then tries a turn and prints ``wrote``, or
``refused KIND HOLDER`` when the service refuses it.
"""

from __future__ import annotations

import sys

from conftest import ScriptedModel
from strands import Agent
from strands.agent.conversation_manager import NullConversationManager

from strands_session_backend import SessionBackendSessionManager, SessionLeaseError

HOLDER = "paused-worker"


def main(url: str, session_id: str) -> None:
    manager = SessionBackendSessionManager(
        session_id, base_url=url, lease=True, lease_ttl=2, lease_holder=HOLDER
    )
    agent = Agent(
        agent_id="assistant",
        model=ScriptedModel([[{"text": "written after the pause"}]]),
        session_manager=manager,
        conversation_manager=NullConversationManager(),
        callback_handler=None,
    )
    print("leased", flush=True)
    sys.stdin.readline()
    try:
        agent("from the paused worker")
        print("wrote", flush=True)
    except SessionLeaseError as refused:
        print(f"refused {refused.kind} {refused.holder}", flush=True)
    manager.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

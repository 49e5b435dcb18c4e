"""The Session Backend service: its ``session-backend`` program, installed by this wheel.

``session-backend`` is on the PATH of the environment the wheel was installed into;
:func:`binary` says where it is, for programs that start it (the Strands client's
``SessionBackendServer`` does).
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

__all__ = ["binary"]

NAME = "session-backend"


def binary() -> Path:
    """The installed ``session-backend`` program."""
    places = [sysconfig.get_path("scripts"), str(Path(sys.executable).parent)]
    user_scheme = f"{os.name}_user"
    if user_scheme in sysconfig.get_scheme_names():
        places.append(sysconfig.get_path("scripts", user_scheme))
    for place in places:
        candidate = Path(place) / NAME
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(f"{NAME} is not installed in {', '.join(places)}")

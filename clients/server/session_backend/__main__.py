"""``python -m session_backend ARGS``: runs ``session-backend ARGS``."""

import os
import sys

from . import binary

program = str(binary())
os.execv(program, [program, *sys.argv[1:]])

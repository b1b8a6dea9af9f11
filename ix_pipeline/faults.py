"""Named fault points for crash tests: the process dies right there, as a SIGKILL would.

Inert unless `IX_TEST_FAULT` names the point; production never sets it. This is how the
crash tests prove that every lifecycle step converges when re-run after dying anywhere.
"""

from __future__ import annotations

import os

FAULT_ENV = "IX_TEST_FAULT"
FAULT_EXIT_CODE = 86


def fault_point(name: str) -> None:
    if os.environ.get(FAULT_ENV) == name:
        os._exit(FAULT_EXIT_CODE)

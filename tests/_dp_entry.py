"""``mmspec-harness`` for the data-parallel tests, with an optional planned death.

``MMSPEC_TEST_KILL=RANK:N``: process RANK of the launch kills itself (SIGKILL: no cleanup, like
``kill -9``) right after appending its N-th record, so a test knows exactly what was on disk when
it died. Everything else is the real command line.
"""

from __future__ import annotations

import os
import signal
import sys

from mmspec.cli import main
from mmspec.distributed import launch_position
from mmspec.records import RecordFile


def _plan_death() -> None:
    rank, count = (int(x) for x in os.environ["MMSPEC_TEST_KILL"].split(":"))
    if launch_position()[0] != rank:
        return
    real = RecordFile.append
    written = []

    def append(self: RecordFile, record: object) -> None:
        real(self, record)
        written.append(record)
        if len(written) == count:
            os.kill(os.getpid(), signal.SIGKILL)

    RecordFile.append = append  # type: ignore[method-assign]


if __name__ == "__main__":
    if os.environ.get("MMSPEC_TEST_KILL"):
        _plan_death()
    sys.exit(main())

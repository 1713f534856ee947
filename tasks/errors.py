"""Error types of the task subsystem.

`TaskError` means a task cannot be used at all (bad YAML, bad data file, unknown name): the run
must stop before a model is loaded. `SampleError` means one sample cannot run (e.g. its image is
missing): the harness records that sample as failed and goes on.
"""

from __future__ import annotations

from mmspec.errors import MmspecError


class TaskError(MmspecError):
    """A task definition or its data is unusable; the message names the file and the field."""


class SampleError(MmspecError):
    """One sample cannot be run; the message names the task, the record id and the path."""

"""Benchmark tasks: lm-eval-style YAML files, their registry, samples and chat messages.

```python
from mmspec.tasks import TaskManager
tm = TaskManager(include_paths=["my_tasks/"])
for name in tm.resolve(["mmspec_testmini"]):
    task = tm.load(name, dataset_root="dataset/MMSpec")
    for sample in task.samples():
        messages = task.build_messages(sample, 0, history=[])
```
"""

from mmspec.tasks.errors import SampleError, TaskError
from mmspec.tasks.registry import TaskManager
from mmspec.tasks.sample import Sample
from mmspec.tasks.task import Task

__all__ = ["Sample", "SampleError", "Task", "TaskError", "TaskManager"]

"""Data-parallel runs: which process of a launch this is, the few messages processes exchange, and
which device each process takes.

``accelerate launch --num_processes N -m mmspec.cli ...`` (or ``torchrun``) starts N copies of the
command with ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set (MPI's variables too, as accelerate reads
them). They form one run: the main process (rank 0) holds the folder locks, decides what is left
to do, merges the per-process record files and writes ``results.json``; every process decodes its
own share of the samples on its own device, exactly as a single process would. Messages are small
Python objects (the plan, errors, device names) over a gloo process group, also on GPUs: nothing
needs NCCL, and gloo lets the processes wait at the end for the slowest one however long it takes.
A process that dies makes the launcher stop the others, so the long wait never hides a crash.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any, TypeVar

from mmspec.adapters.placement import map_devices, parse_device_map
from mmspec.errors import UsageError

log = logging.getLogger("mmspec")

T = TypeVar("T")

#: How long a process may wait for the others (the end of a run waits for the slowest shard).
WAIT_TIMEOUT = timedelta(days=7)

_ENV = {
    "rank": ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK"),
    "size": ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"),
    "local_rank": (
        "LOCAL_RANK",
        "MPI_LOCALRANKID",
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "MV2_COMM_WORLD_LOCAL_RANK",
    ),
    "local_size": (
        "LOCAL_WORLD_SIZE",
        "MPI_LOCALNRANKS",
        "OMPI_COMM_WORLD_LOCAL_SIZE",
        "MV2_COMM_WORLD_LOCAL_SIZE",
    ),
}


def _env_int(names: Sequence[str], default: int) -> int:
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            try:
                return int(value)
            except ValueError:
                raise UsageError(f"${name}={value!r}: expected an integer (set by the launcher)") from None
    return default


@dataclass(frozen=True)
class World:
    """This process's place in a launch; a single-process run is ``World()`` (rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    group: Any = None  # the gloo process group (size > 1)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, items: Sequence[T]) -> list[T]:
        """This process's part of ``items``: every ``size``-th one from ``rank`` on (the same
        items always give the same parts, and the parts differ in length by one at most)."""
        return list(items[self.rank :: self.size])

    # ------------------------------------------------------------------ messages
    def broadcast(self, obj: Any) -> Any:
        """The main process's ``obj``, on every process."""
        if self.size == 1:
            return obj
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, by rank, on every process (waits for all of them)."""
        if self.size == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj, group=self.group)
        return out

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the main process only; every process returns its result, or raises its error."""
        if self.size == 1:
            return fn()
        outcome: tuple[str, Any] = ("ok", None)
        error: BaseException | None = None
        if self.is_main:
            try:
                outcome = ("ok", fn())
            except BaseException as exc:  # every process must hear of it, or they wait forever
                error, outcome = exc, ("error", _portable(exc))
        kind, value = self.broadcast(outcome)
        if error is not None:
            raise error
        if kind == "error":
            value.reported = True  # the main process prints it; the others exit quietly
            raise value
        return value

    def all_ok(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on every process; when any fails, every process raises the first failure."""
        error: BaseException | None = None
        result: Any = None
        try:
            result = fn()
        except BaseException as exc:
            error = exc
        if self.size == 1:
            if error is not None:
                raise error
            return result
        errors = self.gather(None if error is None else _portable(error))
        if error is not None:
            raise error
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            first.reported = True  # the process that failed prints it
            raise first
        return result


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it can travel to the other processes, else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(exc))  # both ways: an unusual constructor fails only when loading
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def launch_position() -> tuple[int, int]:
    """``(rank, number of processes)`` as the launcher set them (read before anything is imported)."""
    return _env_int(_ENV["rank"], 0), max(1, _env_int(_ENV["size"], 1))


@cache
def launch_world() -> World:
    """This process's place in the launch that started it (from the launcher's environment).

    A launch of several processes joins a gloo process group once per process (its own, when
    something else already set up ``torch.distributed``)."""
    size = _env_int(_ENV["size"], 1)
    if size <= 1:
        return World()
    rank = _env_int(_ENV["rank"], 0)
    local_rank = _env_int(_ENV["local_rank"], 0)
    local_size = _env_int(_ENV["local_size"], size)
    if not 0 <= rank < size:
        raise UsageError(f"the launcher says this is process {rank} of {size}")
    import torch.distributed as dist

    if not dist.is_available():
        raise UsageError("a launch of several processes needs torch.distributed, which this torch lacks")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29500")
    if dist.is_initialized():
        group = dist.new_group(backend="gloo", timeout=WAIT_TIMEOUT)
    else:
        dist.init_process_group(backend="gloo", rank=rank, world_size=size, timeout=WAIT_TIMEOUT)
        group = dist.group.WORLD
        atexit.register(_leave)
    log.debug("process %d of %d (local %d of %d)", rank, size, local_rank, local_size)
    return World(rank=rank, size=size, local_rank=local_rank, local_size=local_size, group=group)


def _leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


# --------------------------------------------------------------------------- devices
def use_cpu_requested() -> bool:
    """``accelerate launch --cpu`` (``ACCELERATE_USE_CPU``) asks every process to stay on the CPU."""
    return os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")


def place_process(world: World, model_args: dict[str, Any]) -> tuple[dict[str, Any], list[int] | None]:
    """``--model_args`` for this process, and the GPUs a split target may use (``parallelize``).

    One process per GPU: process ``local_rank`` takes ``cuda:<local_rank>``. With
    ``parallelize=True`` each process takes its own ``n_gpus // processes`` GPUs and splits the
    target over them. Makes this process's (first) GPU the current one, so streams and timing
    events are on the device the work runs on.
    """
    args = dict(model_args)
    if world.size == 1:
        return args, None
    import torch

    cuda = torch.cuda.is_available() and not use_cpu_requested()
    count = torch.cuda.device_count() if cuda else 0
    if _parallelize(args):
        device_map = parse_device_map(args.get("device_map", "auto"))
        if isinstance(device_map, dict):
            if map_devices(device_map) != ["cpu"]:
                raise UsageError(
                    "--model_args device_map=FILE with several processes: every process would load onto the "
                    "same GPUs; use a strategy (auto, balanced, sequential) and each process splits the "
                    "target over its own GPUs"
                )
            return args, None
        if not cuda:
            return args, None
        per = count // world.local_size
        if per < 1:
            raise UsageError(
                f"parallelize=True with {world.local_size} processes on this machine: it has {count} GPU(s), "
                "fewer than one per process"
            )
        gpus = list(range(world.local_rank * per, (world.local_rank + 1) * per))
        torch.cuda.set_device(gpus[0])
        return args, gpus
    device = str(args.get("device") or ("cuda" if cuda else "cpu")).lower()
    if device.startswith("cuda:"):
        raise UsageError(
            f"--model_args device={device} with {world.size} processes: each process takes its own GPU "
            "(cuda:<local rank>); pass device=cuda or leave device out"
        )
    if device == "cuda":
        if world.local_rank >= count:
            raise UsageError(
                f"process {world.rank} of {world.size} needs cuda:{world.local_rank}, but this machine "
                f"has {count} CUDA device(s); launch at most {count} processes per machine"
            )
        torch.cuda.set_device(world.local_rank)
        device = f"cuda:{world.local_rank}"
    args["device"] = device
    return args, None


def _parallelize(args: dict[str, Any]) -> bool:
    return str(args.get("parallelize", "")).lower() in ("1", "true", "yes", "on")

"""Exclusive wall-clock timers patched around the functions that do each stage's work.

`StageTimers.install()` replaces the functions listed in `STAGE_FUNCTIONS` (in
the modules that call them) with timed wrappers for the duration of a block.
Time is *exclusive*: while a timed function calls another timed function, the
clock runs for the inner one only, so the stage totals add up to at most the
wall time, and "post-process" is what `predict` spends outside the
preprocessing and the model call. Optionally the garbage collector's passes
are a stage of their own (they strike wherever allocation happens to trigger
them, so charging them to the interrupted stage would mislead). Generator
functions are timed per `next()`, so work done downstream between two yields
is not charged to them.

Everything runs in the DirectRunner's in-process FnApiRunner, which executes
bundles in the calling thread; the timers count calls from other threads too
(`threads_seen` tells if there were any).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import inspect
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

VALIDATION_STAGE = "driver: model validation (load + test image)"
# Stage -> "module:attribute" of the functions whose time is charged to it.
STAGE_FUNCTIONS: dict[str, tuple[str, ...]] = {
    VALIDATION_STAGE: ("pipeline.run:load_validated_model",),
    "read": ("transforms.read:_read_unit",),
    "decode": ("transforms.decode:decode_record",),
    "model load": ("transforms._inference:load_model",),
    "preprocess (resize)": ("models.loader:_BatchRunner._prepare",),
    "infer (model call)": ("models.adapters.saved_model:SavedModelBackend.run",),
    "post-process (TF, to full resolution)": (
        "models.loader:SemanticModel.predict",
        "models.loader:InstanceModel.predict",
    ),
    "encode (semantic mask RLE)": ("transforms.semantic:encode_class_map",),
    "encode (instance mask RLE)": ("transforms.instance:encode_instances",),
    "join (rows per batch)": ("transforms.rows:_BuildBatchRows.process",),
    "spill files (Arrow IPC, written and read back)": (
        "transforms._inference:write_spill",
        "transforms.rows:write_spill",
        "transforms.write:read_spill",
    ),
    "write (Parquet)": (
        "transforms.write:_TableBuffer.add",
        "transforms.write:_TableBuffer.flush",
        "transforms.write:_TableBuffer.close",
    ),
    "ledger check and table stats": ("pipeline.run:check_ledger", "pipeline.run:table_stats"),
}
# Stages charged inclusively: timed functions they call count as theirs (the
# driver's validation loads and runs the models, which is not the run's inference).
OPAQUE_STAGES = frozenset({VALIDATION_STAGE})


GC_STAGE = "Python garbage collection"


class StageTimers:
    """Accumulates exclusive seconds and call counts per stage."""

    def __init__(
        self,
        stage_functions: Mapping[str, tuple[str, ...]] = STAGE_FUNCTIONS,
        clock: Callable[[], float] = time.perf_counter,
        track_gc: bool = False,
        opaque_stages: Collection[str] = OPAQUE_STAGES,
    ) -> None:
        """Args:
        stage_functions: stage -> "module:attribute" of the functions doing its work.
        clock: Monotonic seconds.
        track_gc: Also time the garbage collector's passes, as the GC_STAGE stage,
          and stop charging them to whatever stage they interrupted.
        opaque_stages: Stages whose nested timed calls are charged to them.
        """
        self._stage_functions = dict(stage_functions)
        self._clock = clock
        self._track_gc = track_gc
        self._opaque = frozenset(opaque_stages)
        self._gc_start: float | None = None
        stages = [*stage_functions, *([GC_STAGE] if track_gc else [])]
        self.seconds: dict[str, float] = dict.fromkeys(stages, 0.0)
        self.calls: dict[str, int] = dict.fromkeys(stages, 0)
        self._stack: list[list[Any]] = []  # [stage, start] frames; the top one's clock runs.
        self._lock = threading.Lock()
        self.threads_seen: set[int] = set()

    def _enter(self, stage: str) -> None:
        now = self._clock()
        with self._lock:
            self.threads_seen.add(threading.get_ident())
            if self._stack and self._stack[-1][0] in self._opaque:
                stage = self._stack[-1][0]  # Nested in an opaque stage: its time.
            else:
                self.calls[stage] += 1
            if self._stack:
                top = self._stack[-1]
                self.seconds[top[0]] += now - top[1]
            self._stack.append([stage, now])

    def _exit(self) -> None:
        now = self._clock()
        with self._lock:
            stage, start = self._stack.pop()
            self.seconds[stage] += now - start
            if self._stack:
                self._stack[-1][1] = now

    def _on_gc(self, phase: str, info: Mapping[str, int]) -> None:
        # No lock and no container allocation here: a collection can start inside
        # _enter/_exit, and allocating could start another one.
        if phase == "start":
            self._gc_start = self._clock()
            return
        if self._gc_start is None:
            return
        elapsed = self._clock() - self._gc_start
        self._gc_start = None
        self.seconds[GC_STAGE] += elapsed
        self.calls[GC_STAGE] += 1
        if self._stack:
            self._stack[-1][1] += elapsed  # The interrupted stage's clock skips the pass.

    def _wrap(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isgeneratorfunction(function):

            @functools.wraps(function)
            def timed_generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
                generator = function(*args, **kwargs)
                while True:
                    self._enter(stage)
                    try:
                        item = next(generator)
                    except StopIteration:
                        return
                    finally:
                        self._exit()
                    yield item

            return timed_generator

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._enter(stage)
            try:
                return function(*args, **kwargs)
            finally:
                self._exit()

        return timed

    @contextlib.contextmanager
    def install(self) -> Iterator[StageTimers]:
        """Patches every stage function for the block, then restores them."""
        restore: list[tuple[Any, str, Any]] = []
        if self._track_gc:
            gc.callbacks.append(self._on_gc)
        try:
            for stage, targets in self._stage_functions.items():
                for target in targets:
                    owner, name = _resolve(target)
                    original = owner.__dict__[name]
                    restore.append((owner, name, original))
                    setattr(owner, name, self._wrap(stage, original))
            yield self
        finally:
            for owner, name, original in reversed(restore):
                setattr(owner, name, original)
            if self._track_gc:
                gc.callbacks.remove(self._on_gc)


def _resolve(target: str) -> tuple[Any, str]:
    """ "module:Class.attr" or "module:attr" -> (the object holding it, attr)."""
    module_name, path = target.split(":")
    owner: Any = importlib.import_module(module_name)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    if name not in owner.__dict__:
        raise AttributeError(
            f"{target} no longer exists; update benchmarks.stage_timers.STAGE_FUNCTIONS "
            "to the function that now does this stage's work"
        )
    return owner, name

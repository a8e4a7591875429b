"""One load and one call per batch for the specs of a run that name the same model.

A panoptic export serves semantic logits and instance detections from one
signature; the bundled instance model does, because it runs the semantic
network anyway to fuse its evidence into the thing segmentation. When a run's
semantic and instance specs name the same model file, format and signature,
`SharedCallBackend` loads it once, and the second of the two transforms to ask
for a batch gets the outputs of the first one's call instead of running the
network again.

A result is matched by the content of the batch fed (both specs preprocess
alike when they name the same model: same input size, resize and range), so a
batch the other transform never asks for, or one that arrives in another
order, only costs a second call: the match can miss, never mix up two batches.
"""

from __future__ import annotations

import hashlib
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from models.adapters.base import Backend, SignatureInfo

# Results kept for the other transform. Within one fused Beam stage both
# transforms take a batch one after the other on the same thread, so one
# result per bundle thread (two on 2 cores) is enough; the cap bounds memory
# when they do not (the bundled model's outputs are ~46 MB per batch of 8,
# mostly logits; held-out run peak RSS 2.44 GB with 4 kept, 2.40 GB with 2).
DEFAULT_CAPACITY = 2


class CallCounts(NamedTuple):
    """How a shared backend's batches were served."""

    calls: int  # Batches the model itself ran.
    reused: int  # Batches served from another user's call.


class _Result(NamedTuple):
    outputs: dict[str, np.ndarray]
    waiting: int  # Users still to take it.


def _batch_key(input_key: str, batch: np.ndarray) -> bytes:
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"{input_key}|{batch.dtype.str}|{batch.shape}".encode())
    digest.update(np.ascontiguousarray(batch).data)
    return digest.digest()


class SharedCallBackend:
    """A backend shared by `users` loaded models, each batch run once for all of them.

    Outputs are returned read-only, as every user receives the same arrays.
    Thread-safe: the model runs outside the lock, so two threads with
    different batches run at once (two threads with the same batch may both
    run it; the results are the same).
    """

    def __init__(self, backend: Backend, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1 result, got {capacity}.")
        self._backend = backend
        self._capacity = capacity
        self._lock = threading.Lock()
        self._results: OrderedDict[bytes, _Result] = OrderedDict()
        self._users = 0
        self._calls = 0
        self._reused = 0

    @property
    def info(self) -> SignatureInfo:
        return self._backend.info

    def attach(self) -> SharedCallBackend:
        """Counts one more loaded model using this backend; returns self."""
        with self._lock:
            self._users += 1
        return self

    def detach(self) -> None:
        """Counts one loaded model fewer (it was released); drops what only it could take."""
        with self._lock:
            self._users -= 1
            if self._users < 2:
                self._results.clear()

    def call_counts(self) -> CallCounts:
        with self._lock:
            return CallCounts(self._calls, self._reused)

    def run(self, input_key: str, batch: np.ndarray) -> dict[str, np.ndarray]:
        """`Backend.run`, served from another user's call of the same batch when kept."""
        with self._lock:
            others = self._users - 1
        if others < 1:  # No other user: nothing to share, nothing to hash.
            with self._lock:
                self._calls += 1
            return self._backend.run(input_key, batch)
        key = _batch_key(input_key, batch)
        with self._lock:
            kept = self._results.pop(key, None)
            if kept is not None:
                self._reused += 1
                if kept.waiting > 1:
                    self._results[key] = kept._replace(waiting=kept.waiting - 1)
                return kept.outputs
            self._calls += 1
        outputs = self._backend.run(input_key, batch)
        for array in outputs.values():
            array.flags.writeable = False
        with self._lock:
            self._results[key] = _Result(outputs, waiting=others)
            while len(self._results) > self._capacity:
                self._results.popitem(last=False)
        return outputs


_REGISTRY_LOCK = threading.Lock()
# One SharedCallBackend per (format, model path, signature) in this process, kept
# only while a loaded model uses it.
_OPEN: weakref.WeakValueDictionary[tuple[str, str, str], SharedCallBackend] = (
    weakref.WeakValueDictionary()
)


def open_shared_backend(
    model_format: str,
    path: str,
    signature: str,
    open_backend: Callable[[str, str, str], Backend],
) -> SharedCallBackend:
    """This process's shared backend for the model, loaded by open_backend on first use.

    The caller is counted as one more user (`attach`); it calls `detach` when it
    releases the model.
    """
    where = os.path.realpath(path) if os.path.exists(path) else path
    key = (model_format, where, signature)
    with _REGISTRY_LOCK:
        shared = _OPEN.get(key)
        if shared is None:
            shared = SharedCallBackend(open_backend(model_format, path, signature))
            _OPEN[key] = shared
        return shared.attach()

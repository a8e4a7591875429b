"""SharedCallBackend: one model call per batch for every model loaded on it."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest

from models.adapters.base import SignatureInfo, TensorInfo
from models.adapters.shared_calls import CallCounts, SharedCallBackend, open_shared_backend

_INFO = SignatureInfo(
    inputs=(TensorInfo("images", (None, 4, 4, 3), "uint8"),),
    outputs=(TensorInfo("total", (None,), "float32"),),
)


class _CountingBackend:
    """Returns each image's pixel sum; records the batches it ran."""

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []
        self._lock = threading.Lock()

    @property
    def info(self) -> SignatureInfo:
        return _INFO

    def run(self, input_key: str, batch: np.ndarray) -> dict[str, np.ndarray]:
        with self._lock:
            self.batches.append(batch.copy())
        return {"total": batch.reshape(len(batch), -1).sum(axis=1).astype(np.float32)}


def _batch(value: int, size: int = 2) -> np.ndarray:
    return np.full([size, 4, 4, 3], value, np.uint8)


def _shared(users: int, capacity: int = 4) -> tuple[SharedCallBackend, _CountingBackend]:
    inner = _CountingBackend()
    shared = SharedCallBackend(inner, capacity=capacity)
    for _ in range(users):
        shared.attach()
    return shared, inner


def test_two_users_asking_for_the_same_batch_cost_one_call() -> None:
    shared, inner = _shared(users=2)
    first = shared.run("images", _batch(1))
    second = shared.run("images", _batch(1))  # Equal content, another array.
    assert len(inner.batches) == 1
    assert second is first
    np.testing.assert_array_equal(first["total"], [48.0, 48.0])  # 4 * 4 * 3 pixels of 1.
    assert shared.call_counts() == CallCounts(calls=1, reused=1)


def test_a_result_is_taken_once_per_other_user() -> None:
    shared, _ = _shared(users=2)
    for _ in range(3):
        shared.run("images", _batch(1))
    # Call, reuse, then a third request (a retry, or a third model) runs again.
    assert shared.call_counts() == CallCounts(calls=2, reused=1)
    three, inner3 = _shared(users=3)
    for _ in range(3):
        three.run("images", _batch(1))
    assert three.call_counts() == CallCounts(calls=1, reused=2)
    assert len(inner3.batches) == 1


def test_different_batches_never_share_a_result() -> None:
    shared, inner = _shared(users=2)
    one, two = shared.run("images", _batch(1)), shared.run("images", _batch(2))
    np.testing.assert_array_equal(one["total"], [48.0, 48.0])
    np.testing.assert_array_equal(two["total"], [96.0, 96.0])
    # Same bytes, another shape: 1 image of 4x8 is not 2 images of 4x4.
    wide = shared.run("images", np.ones([1, 4, 8, 3], np.uint8))
    np.testing.assert_array_equal(wide["total"], [96.0])
    assert len(inner.batches) == 3


def test_a_single_user_runs_every_batch_and_keeps_nothing() -> None:
    shared, inner = _shared(users=1)
    shared.run("images", _batch(1))
    shared.run("images", _batch(1))
    assert len(inner.batches) == 2
    assert shared.call_counts() == CallCounts(calls=2, reused=0)


def test_results_beyond_the_capacity_are_dropped_oldest_first() -> None:
    shared, inner = _shared(users=2, capacity=2)
    for value in (1, 2, 3):
        shared.run("images", _batch(value))
    shared.run("images", _batch(3))  # Kept.
    shared.run("images", _batch(1))  # Dropped by 2 and 3: runs again.
    assert [int(b[0, 0, 0, 0]) for b in inner.batches] == [1, 2, 3, 1]


def test_shared_outputs_are_read_only() -> None:
    shared, _ = _shared(users=2)
    outputs = shared.run("images", _batch(1))
    with pytest.raises(ValueError, match="read-only"):
        outputs["total"][0] = 0.0


def test_a_released_user_stops_the_keeping() -> None:
    shared, inner = _shared(users=2)
    shared.run("images", _batch(1))
    shared.detach()
    shared.run("images", _batch(1))  # The result kept for the released user is gone.
    assert len(inner.batches) == 2


def test_capacity_must_hold_a_result() -> None:
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        SharedCallBackend(_CountingBackend(), capacity=0)


def test_threads_with_different_batches_get_their_own_outputs() -> None:
    shared, _ = _shared(users=2)
    results: dict[int, float] = {}

    def worker(value: int) -> None:
        for _ in range(20):
            results[value] = float(shared.run("images", _batch(value))["total"][0])

    threads = [threading.Thread(target=worker, args=(v,)) for v in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {1: 48.0, 2: 96.0, 3: 144.0}


def test_one_backend_per_model_path_and_signature(tmp_path) -> None:
    opened: list[tuple[str, str, str]] = []

    def open_backend(model_format: str, path: str, signature: str) -> _CountingBackend:
        opened.append((model_format, path, signature))
        return _CountingBackend()

    path = str(tmp_path)
    first = open_shared_backend("saved_model", path, "serving_default", open_backend)
    again = open_shared_backend("saved_model", f"{path}/.", "serving_default", open_backend)
    other = open_shared_backend("saved_model", path, "other", open_backend)
    assert again is first
    assert other is not first
    assert len(opened) == 2
    del first, again, other
    gc.collect()
    # Released by every user: the next open loads the model again.
    open_shared_backend("saved_model", path, "serving_default", open_backend)
    assert len(opened) == 3

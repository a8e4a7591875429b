"""Tests for models/tf_runtime.py, in a fresh interpreter (TF must not have started yet)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from models.tf_runtime import configure_threads

_SCRIPT = """
import tensorflow as tf
from models.tf_runtime import configure_threads
first = configure_threads(intra_op=2, inter_op=1)
tf.constant(1.0) + 1.0  # Starts the runtime.
second = configure_threads(intra_op=5, inter_op=5)
print(first, second, tf.config.threading.get_intra_op_parallelism_threads(),
      tf.config.threading.get_inter_op_parallelism_threads())
"""


def test_configure_threads_before_and_after_start() -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], cwd=root, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["True", "False", "2", "1"]


def test_configure_threads_rejects_negative_counts() -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        configure_threads(intra_op=-1, inter_op=0)

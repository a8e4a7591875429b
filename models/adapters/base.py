"""The backend interface and the description of a model's inputs and outputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np


class TensorInfo(NamedTuple):
    """One named input or output of a model."""

    name: str
    shape: tuple[int | None, ...] | None  # None dims are dynamic; None shape is unknown rank.
    dtype: str  # numpy dtype name, e.g. "uint8", "float32".

    def describe(self) -> str:
        """E.g. 'images uint8 [None, 256, 256, 3]' ('?' for an unknown rank)."""
        dims = "?" if self.shape is None else "[" + ", ".join(str(d) for d in self.shape) + "]"
        return f"{self.name} {self.dtype} {dims}"


@dataclass(frozen=True)
class SignatureInfo:
    """What a model takes and returns, for validation and error messages."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    def input(self, name: str) -> TensorInfo | None:
        """The input called `name`, or None if the model has none."""
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> TensorInfo | None:
        """The output called `name`, or None if the model has none."""
        return next((t for t in self.outputs if t.name == name), None)

    def describe(self) -> str:
        """E.g. 'inputs: images uint8 [None, 256, 256, 3]; outputs: logits float32 [...]'."""
        inputs = ", ".join(t.describe() for t in self.inputs) or "none"
        outputs = ", ".join(t.describe() for t in self.outputs) or "none"
        return f"inputs: {inputs}; outputs: {outputs}"


class Backend(Protocol):
    """A loaded model that runs batches."""

    @property
    def info(self) -> SignatureInfo:
        """The model's inputs and outputs."""
        ...

    def run(self, input_key: str, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Runs one batch.

        Args:
          input_key: The input to feed (one of `info.inputs`).
          batch: [B, h, w, 3] in the input's dtype.

        Returns:
          Every output by name, each with leading batch dimension B.
        """
        ...

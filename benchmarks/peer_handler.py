"""A RunInference ModelHandler for plain SavedModel signatures (no Keras).

Beam's own TensorFlow handlers (`apache_beam.ml.inference.tensorflow_inference`)
load models with `tf.keras.models.load_model`, which refuses a plain
`tf.Module` SavedModel like the bundled ones; this is the small handler a Beam
user writes instead: `tf.saved_model.load` plus one signature call per batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from apache_beam.ml.inference.base import ModelHandler, PredictionResult


class LoadedSignature:
    """A loaded SavedModel and one of its signatures (weak-referenceable, for Beam's Shared).

    The module is kept referenced because the signature's variables live on it.
    """

    def __init__(self, path: str, signature: str) -> None:
        self.module = tf.saved_model.load(path)
        self.function = self.module.signatures[signature]


class SavedModelSignatureHandler(ModelHandler[np.ndarray, PredictionResult, LoadedSignature]):
    """Runs batches of uint8 [h, w, 3] model inputs through one SavedModel signature.

    Each PredictionResult's `inference` is a dict of that example's outputs
    (numpy, batch dimension removed), e.g. {"logits": float32 [128, 128, 7]}.
    """

    def __init__(self, path: str, signature: str, input_key: str, batch_size: int) -> None:
        """Batches of exactly `batch_size` examples (fewer only at a bundle's end)."""
        super().__init__(min_batch_size=batch_size, max_batch_size=batch_size)
        self._path = path
        self._signature = signature
        self._input_key = input_key

    def load_model(self) -> LoadedSignature:
        return LoadedSignature(self._path, self._signature)

    def run_inference(
        self,
        batch: Sequence[np.ndarray],
        model: LoadedSignature,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        outputs = model.function(**{self._input_key: tf.convert_to_tensor(np.stack(batch))})
        arrays = {name: value.numpy() for name, value in outputs.items()}
        return [
            PredictionResult(example, {name: value[i] for name, value in arrays.items()})
            for i, example in enumerate(batch)
        ]

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        # The default pickles the whole batch just to measure it; Beam's own
        # TF handlers measure arrays directly too.
        return sum(example.nbytes for example in batch)

    def get_metrics_namespace(self) -> str:
        return "RunInferencePeer"

"""Model runtimes behind one interface: SavedModel, Keras (.keras) and TFLite.

Each backend loads one model file or directory, describes its inputs and
outputs (`SignatureInfo`) and runs a batch through it (`Backend.run`). What the
outputs mean (logits, OD-API detections, ...) is the loader's business.
"""

from __future__ import annotations

from models.adapters.base import Backend, SignatureInfo, TensorInfo

FORMAT_SAVED_MODEL = "saved_model"
FORMAT_KERAS = "keras"
FORMAT_TFLITE = "tflite"
FORMATS = (FORMAT_SAVED_MODEL, FORMAT_KERAS, FORMAT_TFLITE)


def open_backend(model_format: str, path: str, signature: str) -> Backend:
    """Loads a model with the runtime for its format.

    Args:
      model_format: One of FORMATS.
      path: The SavedModel directory, `.keras` file or `.tflite` file.
      signature: The SavedModel / TFLite signature to run (ignored for Keras).

    Raises:
      ValueError: If the format is unknown or the model cannot be loaded.
    """
    # Imported lazily so a pipeline that uses only SavedModels never imports Keras or LiteRT.
    if model_format == FORMAT_SAVED_MODEL:
        from models.adapters.saved_model import SavedModelBackend

        return SavedModelBackend(path, signature)
    if model_format == FORMAT_KERAS:
        from models.adapters.keras_model import KerasBackend

        return KerasBackend(path)
    if model_format == FORMAT_TFLITE:
        from models.adapters.tflite_model import TFLiteBackend

        return TFLiteBackend(path, signature)
    raise ValueError(f"unknown model format {model_format!r}; use one of {FORMATS}")


__all__ = [
    "FORMATS",
    "FORMAT_KERAS",
    "FORMAT_SAVED_MODEL",
    "FORMAT_TFLITE",
    "Backend",
    "SignatureInfo",
    "TensorInfo",
    "open_backend",
]

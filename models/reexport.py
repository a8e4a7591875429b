"""Re-exports trained models with today's export code; weights and post-processing unchanged.

    python -m models.reexport --model_dir models/bundled [--output DIR] [--input_shape HxW]

Restores both networks from model_dir's instance export (`restore_exported_weights`)
and writes the SavedModels and spec files again with `models.export.export_models`,
with the post-processing, input shape and mirror averaging that model_dir's training
log records. It carries a change of the export contract (the instance export also
returning the semantic logits) to trained models without retraining or
recalibrating them. The training log is kept as it is (copied when --output is
another directory).

`--input_shape` exports the same weights at another input size (the networks are
fully convolutional; sides must be multiples of 16), e.g. to measure what a larger
input buys at test time (models/MODEL_HISTORY.md, "The eleven-stage weights
exported at a larger input"). The written training log then records it as
`export_input_shape`, beside the `input_shape` the weights trained at, and later
re-exports of that directory keep it.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from models.export import export_models, restore_exported_weights
from models.export_postprocess import PostprocessConfig
from models.net_geometry import check_input_shape, parse_input_shape
from models.networks import instance_net, semantic_net
from models.train_finalize import TRAINING_LOG, training_log

# Training-log key for a size the weights were exported at other than the one they trained at.
EXPORT_INPUT_SHAPE = "export_input_shape"


def reexport(model_dir: Path, output: Path, input_shape: tuple[int, int] | None = None) -> None:
    """Re-exports model_dir's networks to output (which may be model_dir itself), at
    input_shape (height, width) if given, else at the size the training log records.

    Raises:
      ValueError: model_dir has no training log (its post-processing is unknown) or
        no instance export whose weights fit today's networks.
    """
    log = training_log(model_dir)
    if log is None or "postprocess" not in log or "input_shape" not in log:
        raise ValueError(
            f"{model_dir}: no {TRAINING_LOG} with 'postprocess' and 'input_shape'; re-export "
            "needs the post-processing the models were calibrated with. Rerun "
            "`python -m models.train_finalize` from the saved weights instead."
        )
    trained = (int(log["input_shape"][0]), int(log["input_shape"][1]))
    if input_shape is None:
        input_shape = tuple(log.get(EXPORT_INPUT_SHAPE, trained))
    shape = (int(input_shape[0]), int(input_shape[1]))
    check_input_shape(shape)
    semantic, instance = semantic_net(), instance_net()
    restore_exported_weights(semantic, instance, model_dir)
    export_models(
        semantic,
        instance,
        output,
        PostprocessConfig(**log["postprocess"]),
        mirror_average=bool(log.get("mirror_average", False)),
        input_shape=shape,
    )
    recorded = None if shape == trained else list(shape)
    if log.get(EXPORT_INPUT_SHAPE) != recorded:
        if recorded is None:
            del log[EXPORT_INPUT_SHAPE]  # Back at the trained size.
        else:
            log[EXPORT_INPUT_SHAPE] = recorded
        (output / TRAINING_LOG).write_text(json.dumps(log, indent=2) + "\n")
    elif output.resolve() != model_dir.resolve():
        shutil.copyfile(model_dir / TRAINING_LOG, output / TRAINING_LOG)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", type=Path, required=True, help="A models.train --output.")
    parser.add_argument("--output", type=Path, default=None, help="Default: --model_dir.")
    parser.add_argument(
        "--input_shape",
        type=parse_input_shape,
        default=None,
        help="HxW to export at; default: the training log's export_input_shape, else its "
        "input_shape.",
    )
    args = parser.parse_args(argv)
    try:
        reexport(args.model_dir, args.output or args.model_dir, args.input_shape)
    except ValueError as e:
        parser.error(str(e))
    print(f"Re-exported {args.model_dir} to {args.output or args.model_dir}", flush=True)


if __name__ == "__main__":
    main()

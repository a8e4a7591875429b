"""Training losses for the two networks (TF ops, batch-mean scalars)."""

from __future__ import annotations

import tensorflow as tf

# Mild extra weight on the small classes (vehicle, pedestrian) so they are not
# drowned by sky/building/road pixels; strong weights would bloat their masks.
SEMANTIC_CLASS_WEIGHTS = (1.0, 1.0, 1.0, 1.2, 1.0, 1.5, 2.0)
THING_CLASS_WEIGHTS = (1.0, 1.5, 2.0)
CENTER_WEIGHT = 1.0
OFFSET_WEIGHT = 0.1
# Both segmentation losses average over the hardest 20% of a batch's pixels
# (Panoptic-DeepLab's bootstrapped cross-entropy): most pixels are easy sky, road
# and building, and a plain mean lets them drown thin objects and boundaries.
HARD_PIXEL_FRACTION = 0.2
# Both segmentation losses add a Lovasz-softmax term (Berman et al. 2018), a convex
# surrogate of each class's IoU: cross-entropy weighs every pixel alike, so thin,
# rare pedestrians count little; the IoU the targets are measured in weighs each
# class alike. The term sorts the pixels' errors once per class, so it reads every
# LOVASZ_SUBSAMPLE-th row and column only (the bundled run's 3,000 steps took 1,846 s,
# 1,649 s without the term); the cross-entropy still sees every pixel.
LOVASZ_WEIGHT = 0.5
LOVASZ_SUBSAMPLE = 3


def to_label_size(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """float [B, G, G, C] -> [B, H, W, C] of labels [B, H, W], bilinear as the pipeline
    resizes logits; unchanged when the (static) sizes already agree."""
    if logits.shape[1:3] == labels.shape[1:3] and logits.shape[1] is not None:
        return logits
    return tf.image.resize(logits, tf.shape(labels)[1:3], method="bilinear")


def weighted_cross_entropy(
    logits: tf.Tensor,
    labels: tf.Tensor,
    weights: tuple[float, ...],
    hard_fraction: float = HARD_PIXEL_FRACTION,
) -> tf.Tensor:
    """Class-weighted softmax cross-entropy, averaged over the hardest pixels.

    logits: float32 [B, H, W, C] at label resolution; labels: int [B, H, W].
    hard_fraction: share of the batch's pixels (highest weighted loss first) the
      mean is taken over; 1.0 is the plain weighted pixel mean.
    """
    if not 0.0 < hard_fraction <= 1.0:
        raise ValueError(f"hard_fraction must be in (0, 1], got {hard_fraction}")
    labels = tf.cast(labels, tf.int32)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    w = tf.gather(tf.constant(weights, tf.float32), labels)
    if hard_fraction == 1.0:
        return tf.reduce_sum(ce * w) / tf.reduce_sum(w)
    pixel_losses = tf.reshape(ce * w, [-1])
    k = tf.maximum(tf.cast(tf.cast(tf.size(pixel_losses), tf.float32) * hard_fraction, tf.int32), 1)
    return tf.reduce_mean(tf.math.top_k(pixel_losses, k=k, sorted=False).values)


def _lovasz_gradient(fg_sorted: tf.Tensor) -> tf.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss at the sorted errors (Berman et al.)."""
    total = tf.reduce_sum(fg_sorted)
    intersection = total - tf.cumsum(fg_sorted)
    union = total + tf.cumsum(1.0 - fg_sorted)
    jaccard = 1.0 - intersection / union
    return tf.concat([jaccard[:1], jaccard[1:] - jaccard[:-1]], 0)


def lovasz_softmax(
    logits: tf.Tensor, labels: tf.Tensor, subsample: int = LOVASZ_SUBSAMPLE
) -> tf.Tensor:
    """Lovasz-softmax loss over the batch's pixels, averaged over the classes present.

    For one-hot predictions it equals 1 - the mean IoU of the classes in `labels`;
    for soft ones, the Lovasz extension of that loss at the errors |[y = c] - p_c|.

    Args:
      logits: float32 [B, H, W, C].
      labels: int [B, H, W].
      subsample: reads pixels [::subsample, ::subsample] of each image.
    """
    num_classes = logits.shape[-1]
    logits = logits[:, ::subsample, ::subsample]
    labels = labels[:, ::subsample, ::subsample]
    probs = tf.reshape(tf.nn.softmax(logits), [-1, num_classes])
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    losses, present = [], []
    for c in range(num_classes):
        fg = tf.cast(tf.equal(labels, c), tf.float32)
        errors = tf.abs(fg - probs[:, c])
        errors_sorted, order = tf.math.top_k(errors, k=tf.size(errors))
        grad = tf.stop_gradient(_lovasz_gradient(tf.gather(fg, order)))
        losses.append(tf.tensordot(errors_sorted, grad, 1))
        present.append(tf.reduce_sum(fg) > 0)
    weights = tf.cast(tf.stack(present), tf.float32)
    return tf.reduce_sum(tf.stack(losses) * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def center_focal_loss(logits: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of peaks.

    logits, target: float32 [B, G, G, 2]; target is 1.0 exactly at centres.
    """
    p = tf.clip_by_value(tf.sigmoid(logits), 1e-4, 1.0 - 1e-4)
    pos = tf.cast(target >= 1.0, tf.float32)
    pos_loss = -tf.math.log(p) * tf.square(1.0 - p) * pos
    neg_loss = -tf.math.log(1.0 - p) * tf.square(p) * tf.pow(1.0 - target, 4.0) * (1.0 - pos)
    return (tf.reduce_sum(pos_loss) + tf.reduce_sum(neg_loss)) / tf.maximum(tf.reduce_sum(pos), 1.0)


def offset_loss(pred: tf.Tensor, target: tf.Tensor, weight: tf.Tensor) -> tf.Tensor:
    """L1 over instance cells, in input pixels.

    pred, target: float32 [B, G, G, 2]; weight: float32 [B, G, G].
    """
    l1 = tf.reduce_sum(tf.abs(pred - target), axis=-1) * weight
    return tf.reduce_sum(l1) / tf.maximum(tf.reduce_sum(weight), 1.0)


def semantic_loss(outputs: dict[str, tf.Tensor], class_maps: tf.Tensor) -> tf.Tensor:
    """Loss of the semantic net given class maps uint8 [B, S, S] (S = input side)."""
    logits = to_label_size(outputs["logits"], class_maps)
    return weighted_cross_entropy(
        logits, class_maps, SEMANTIC_CLASS_WEIGHTS
    ) + LOVASZ_WEIGHT * lovasz_softmax(logits, class_maps)


def class_offset_weight(
    offset_weight: tf.Tensor, thing: tf.Tensor, pedestrian_weight: float
) -> tf.Tensor:
    """The offset loss's cell weights with pedestrian cells counted pedestrian_weight times.

    Vehicles are many times larger than pedestrians and hold most instance cells,
    so a plain per-cell mean spends little of the offset loss on the pedestrians
    whose grouping limits the mask AP (model card, "Known limits").

    offset_weight: float32 [B, H, W]; thing: int32 [B, H, W], 2 = pedestrian.
    """
    scale = tf.where(tf.equal(thing, 2), tf.constant(pedestrian_weight, tf.float32), 1.0)
    return offset_weight * scale


def instance_loss(
    outputs: dict[str, tf.Tensor],
    targets: dict[str, tf.Tensor],
    pedestrian_offset_weight: float = 1.0,
) -> dict[str, tf.Tensor]:
    """Named loss terms of the instance net; "total" is their weighted sum.

    pedestrian_offset_weight: how many times a pedestrian cell counts in the offset
    loss against a vehicle cell (`class_offset_weight`).
    """
    thing_logits = to_label_size(outputs["thing_logits"], targets["thing"])
    weight = class_offset_weight(
        targets["offset_weight"], targets["thing"], pedestrian_offset_weight
    )
    terms = {
        "thing": weighted_cross_entropy(thing_logits, targets["thing"], THING_CLASS_WEIGHTS)
        + LOVASZ_WEIGHT * lovasz_softmax(thing_logits, targets["thing"]),
        "center": center_focal_loss(outputs["center_logits"], targets["heatmap"]),
        "offset": offset_loss(outputs["offsets"], targets["offsets"], weight),
    }
    terms["total"] = (
        terms["thing"] + CENTER_WEIGHT * terms["center"] + OFFSET_WEIGHT * terms["offset"]
    )
    return terms

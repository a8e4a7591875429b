"""The benchmark runs: which variant, on how many images, with which flags.

Each `Run` becomes one process (`python -m <module> ...`); `plan_runs` lays
them out for one harness invocation, repeats interleaved so that a slow
spell on a shared machine does not hit one variant only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

BARE_LOADER = "bare_loader"
BARE_RAW = "bare_raw"
PIPELINE = "pipeline"
PEER = "runinference_peer"
PIPELINE_MP = "pipeline_mp2"
PIPELINE_1BUNDLE = "pipeline_1bundle"
PROFILE = "stage_profile"
RETRACE = "retrace_varied_sizes"

# Every variant's module and whether it writes tables (and so takes --output).
_VARIANTS: dict[str, tuple[str, bool]] = {
    BARE_LOADER: ("benchmarks.bare_loop", False),
    BARE_RAW: ("benchmarks.bare_loop", False),
    PIPELINE: ("benchmarks.pipeline_run", True),
    PEER: ("benchmarks.runinference_peer", True),
    PIPELINE_MP: ("benchmarks.pipeline_run", True),
    PIPELINE_1BUNDLE: ("benchmarks.pipeline_run", True),
    PROFILE: ("benchmarks.stage_profile", True),
    RETRACE: ("benchmarks.bare_loop", False),
}
# Variants run at every size; the others run once, at the largest size.
PER_SIZE_VARIANTS = (BARE_LOADER, BARE_RAW, PIPELINE, PEER)
ALL_VARIANTS = tuple(_VARIANTS)
# Two SDK worker processes; segbeam's --tf_threads default splits the cores between them.
_MULTI_PROCESS_FLAGS = ("--", "--direct_num_workers=2", "--direct_running_mode=multi_processing")
# Beam's own DirectRunner default: one bundle at a time in the one process (segbeam's
# default runs one bundle thread per core).
_ONE_BUNDLE_FLAGS = ("--", "--direct_num_workers=1")


@dataclasses.dataclass(frozen=True)
class Run:
    """One process to start and measure."""

    variant: str
    num_images: int
    repeat: int
    dataset: str  # "fixed" (the 512x512 shards) or "varied" (the generator's sizes).
    extra_args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()

    @property
    def module(self) -> str:
        return _VARIANTS[self.variant][0]

    @property
    def writes_tables(self) -> bool:
        return _VARIANTS[self.variant][1]

    @property
    def name(self) -> str:
        return f"{self.variant}-{self.num_images}-r{self.repeat}"


def _run(variant: str, num_images: int, repeat: int) -> Run:
    if variant in (BARE_LOADER, RETRACE):
        args: tuple[str, ...] = ("--mode", "loader")
    elif variant == BARE_RAW:
        args = ("--mode", "raw")
    elif variant == PIPELINE_MP:
        args = ("--variant", variant, *_MULTI_PROCESS_FLAGS)
    elif variant == PIPELINE_1BUNDLE:
        args = ("--variant", variant, *_ONE_BUNDLE_FLAGS)
    elif variant == PROFILE:
        # Its timers attribute time to one stage at a time: one bundle thread only.
        args = _ONE_BUNDLE_FLAGS
    else:
        args = ()
    env: tuple[tuple[str, str], ...] = ()
    dataset = "varied" if variant == RETRACE else "fixed"
    return Run(variant, num_images, repeat, dataset, args, env)


def plan_runs(
    sizes: Sequence[int], variants: Sequence[str], repeats: int, retrace_images: int
) -> list[Run]:
    """The runs of one harness invocation, in execution order.

    Args:
      sizes: Image counts, e.g. (N, 10 N); per-size variants run at each.
      variants: Which of ALL_VARIANTS to run.
      repeats: Times each run is repeated (rounds interleave the variants).
      retrace_images: Images in the varied-size dataset of the retrace check.
    """
    unknown = sorted(set(variants) - set(ALL_VARIANTS))
    if unknown:
        raise ValueError(f"Unknown variants {unknown}; choose from {list(ALL_VARIANTS)}.")
    runs = []
    for repeat in range(repeats):
        for size in sorted(sizes):
            runs += [_run(v, size, repeat) for v in PER_SIZE_VARIANTS if v in variants]
        for variant in (PIPELINE_MP, PIPELINE_1BUNDLE, PROFILE):
            if variant in variants:
                runs.append(_run(variant, max(sizes), repeat))
    if RETRACE in variants:
        runs.append(_run(RETRACE, retrace_images, 0))
    return runs


WARMUP_IMAGES = 16


def warmup_run(num_images: int) -> Run:
    """An unreported first run that pulls TensorFlow, Beam and the models into the page cache.

    Without it the first measured process pays for reading them from disk. It
    reads the `num_images` dataset but stops after WARMUP_IMAGES images.
    """
    run = _run(BARE_RAW, num_images, 0)
    return dataclasses.replace(
        run, repeat=-1, extra_args=(*run.extra_args, f"--limit={WARMUP_IMAGES}")
    )

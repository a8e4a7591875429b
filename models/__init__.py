"""segbeam's models: specs, loaders, post-processing, and the bundled models' code."""

import os

# TensorFlow turns its oneDNN CPU kernels on by default only on CPUs with
# AVX512_VNNI / AVX512_BF16 / AMX; on an AVX-512 CPU without them (Skylake-SP, one of
# the machines segbeam runs on) the bundled models take about twice the CPU time with
# them off (docs/performance.md, "Session 11"). Set before any TensorFlow import (a
# package's __init__ runs before its modules); an explicit TF_ENABLE_ONEDNN_OPTS=0 still
# wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

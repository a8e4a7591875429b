"""Installs segbeam with the dependency versions it is tested with.

The same file is what `--setup_file ./setup.py` ships to remote Beam workers,
so it lists only what the pipeline needs at run time; test tools are an extra.
"""

import setuptools

# Versions tested together on Python 3.11 (see README, "Installing").
RUNTIME_REQUIREMENTS = [
    "apache-beam[dask]==2.77.0",
    "tensorflow-cpu==2.21.0",  # GPU workers: install tensorflow[and-cuda]==2.21.0 instead.
    "tensorflow-datasets==4.9.10",
    "numpy==2.4.6",
    "pyarrow==25.0.1",
    "pycocotools==2.0.11",
    "pillow==12.3.0",
    "google-crc32c==1.9.0",
    "pyyaml==6.0.4",
    "ai-edge-litert==2.3.0",  # Runs .tflite models; TensorFlow's interpreter is the fallback.
]

TEST_REQUIREMENTS = [
    "pytest==9.2.0",
    "duckdb==2.0.1",
    "pandas==2.2.3",  # Beam 2.77 supports pandas < 2.4.
    "ruff==0.17.6",
]

setuptools.setup(
    name="segbeam",
    version="0.1.0",
    description="Semantic and instance segmentation of image shards on Apache Beam, to Parquet.",
    python_requires=">=3.11,<3.12",
    packages=setuptools.find_packages(
        include=["pipeline", "pipeline.*", "transforms", "transforms.*", "models", "models.*"]
    ),
    py_modules=["run_pipeline"],
    include_package_data=True,
    package_data={"models": ["bundled/**/*", "sample/*"]},
    install_requires=RUNTIME_REQUIREMENTS,
    extras_require={"test": TEST_REQUIREMENTS},
)

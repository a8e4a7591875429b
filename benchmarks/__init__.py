"""segbeam's performance harness: `python -m benchmarks.run_benchmarks --help`."""

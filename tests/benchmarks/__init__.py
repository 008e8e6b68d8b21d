"""On-demand benchmarks (not collected by pytest): see tests/benchmarks/bench.py."""

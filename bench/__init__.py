"""Benchmarks of a real Nuage server (`make bench`); results in bench/RESULTS.md."""

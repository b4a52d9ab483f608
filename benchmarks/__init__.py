"""Benchmark scripts and their support modules (not part of the package)."""

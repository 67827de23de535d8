"""Benchmarks: each prints its figures (README, "Benchmarks"); none is a test."""

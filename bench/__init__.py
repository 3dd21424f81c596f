"""Benchmarks: each writes its figures to bench/results/ and runs its baseline in the same run."""

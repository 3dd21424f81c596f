"""Benchmarks: each writes its figures to bench/results/ and runs its baseline in the same run."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository root

"""Where papers come from. One module per source, each with ``parse(body)`` (never raises) and
``fetch(day, ...)`` returning a FetchResult; settings.DIGEST_SOURCE names the default one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from digests.sources import hf_api, hf_page, local_file
from digests.sources.base import FetchResult, PaperItem, ParseResult

SOURCES = {module.NAME: module for module in (hf_api, hf_page, local_file)}

__all__ = ["SOURCES", "FetchResult", "PaperItem", "ParseResult", "fetch"]


def fetch(
    name: str,
    day: dt.date,
    *,
    path: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> FetchResult:
    if name not in SOURCES:
        return FetchResult(fatal=f"unknown source {name!r}; use one of {', '.join(SOURCES)}")
    if name == local_file.NAME:
        return local_file.fetch(day, path=path, progress=progress)
    return SOURCES[name].fetch(day, progress=progress)

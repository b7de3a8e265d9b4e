"""Probe preparation: the faces found on the image to be searched, and the recorded edits of a probe."""

from __future__ import annotations


def probe_preview_run(*, probe_id: int) -> None:
    raise NotImplementedError

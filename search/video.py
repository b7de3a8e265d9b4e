"""Stills from recorded video: decoding in a worker under the memory cap, proposing the sharpest frames with faces."""

from __future__ import annotations


def video_stills_find(*, video_id: int) -> None:
    raise NotImplementedError

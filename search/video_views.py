"""Stills from recorded video: upload into a case, the proposed stills, searching the chosen ones."""

from __future__ import annotations

from django.http import Http404


def _not_yet(*args, **kwargs):
    raise Http404("Not available yet")


video_upload = video_detail = video_status = video_search = video_still_image = _not_yet

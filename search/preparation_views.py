"""Probe preparation before a search: choose faces, crop, rotate, adjust; every edit recorded."""

from __future__ import annotations

from django.http import Http404


def _not_yet(*args, **kwargs):
    raise Http404("Not available yet")


probe_prepare = probe_prepare_status = probe_edit = probe_prepared_search = probe_preview_face = _not_yet
probe_original_image = _not_yet

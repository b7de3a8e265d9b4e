"""The structured comparison record: the FISWG facial feature list and a fixed conclusion scale with no
"identification" level (a comparison supports a lead or not; it never identifies)."""

from __future__ import annotations

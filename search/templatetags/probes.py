from django import template

register = template.Library()


@register.filter
def frame_time(milliseconds) -> str:
    """A frame's time in a video as minutes:seconds.milliseconds (01:23.450)."""
    if milliseconds in (None, ""):
        return ""
    minutes, rest = divmod(int(milliseconds), 60_000)
    return f"{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"

"""The case page's video card: the case's videos and the upload form (blank, or with the upload's errors)."""

from django import template

from search import selectors
from search.video_views import VideoUploadForm

register = template.Library()


@register.simple_tag
def case_videos(case) -> list:
    return list(selectors.videos_for_case(case=case))


@register.simple_tag(takes_context=True)
def video_upload_form(context) -> VideoUploadForm:
    return context.get("video_form") or VideoUploadForm()

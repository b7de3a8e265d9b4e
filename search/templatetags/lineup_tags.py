"""The lineup gate's state of a confirmed lead for a template: {% lead_clearance lead as clearance %}."""

from django import template

from search import lineup
from search.models import LeadReview

register = template.Library()


@register.simple_tag
def lead_clearance(review: LeadReview) -> lineup.Clearance:
    return lineup.clearance_of(review)

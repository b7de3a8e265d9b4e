"""Template filters for a candidate's distance bound and strength, read from its engine's registry entry."""

from django import template

from search import selectors
from search.models import Candidate

register = template.Library()


@register.filter
def candidate_threshold(candidate: Candidate) -> float:
    return selectors.candidate_threshold(candidate)


@register.filter
def candidate_strength(candidate: Candidate) -> tuple[str, str]:
    return selectors.candidate_strength(candidate)

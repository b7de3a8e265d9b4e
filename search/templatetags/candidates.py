"""Template filters for a candidate's distance bound and strength, read from its engine's registry entry, and
for its comparison records (search/comparison.py)."""

from django import template

from search import comparison, selectors
from search.models import Candidate, ComparisonRecord, LeadReview

register = template.Library()


@register.filter
def candidate_threshold(candidate: Candidate) -> float:
    return selectors.candidate_threshold(candidate)


@register.filter
def candidate_strength(candidate: Candidate) -> tuple[str, str]:
    return selectors.candidate_strength(candidate)


@register.filter
def conclusion_words(conclusion: str) -> str:
    """A conclusion of the fixed scale in words ("supports" → "Supports a lead")."""
    return comparison.CONCLUSION_LABELS.get(conclusion, conclusion)


@register.filter
def of_candidate(by_candidate: dict, candidate_id: int):
    """One candidate's entry of a mapping keyed by candidate id (what a user may see of its records)."""
    return by_candidate.get(candidate_id)


@register.inclusion_tag("search/_comparison_conclusions.html")
def comparison_conclusions(candidate: Candidate) -> dict:
    """Both examiners' conclusions of a decided lead, for a list of confirmed leads (the case page). Nothing
    for a proposal still waiting: its first record is blind to the verifier."""
    review = getattr(candidate, "review", None)
    if review is None or review.status not in (LeadReview.Status.CONFIRMED, LeadReview.Status.REJECTED):
        return {"hidden": True}
    records = comparison.comparison_records_for([candidate.id]).get(candidate.id, {})
    return {"first": records.get(ComparisonRecord.Role.PROPOSER), "second": records.get(ComparisonRecord.Role.VERIFIER)}

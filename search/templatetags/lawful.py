"""The case page's authorisation section, with blank answer forms unless a posted one came back with errors."""

from django import template

from search.forms import AuthorisationGrantForm, AuthorisationRefuseForm
from search.gallery_scope import galleries_searchable_by

register = template.Library()


@register.inclusion_tag("search/_lawful_use.html", takes_context=True)
def case_authorisation_section(context):
    case = context["case"]
    return {
        "case": case,
        "lawful": context["lawful"],
        "user": context["user"],
        "csrf_token": context.get("csrf_token"),
        "grant_form": context.get("grant_form")
        or AuthorisationGrantForm(galleries=galleries_searchable_by(agency_id=case.agency_id)),
        "refuse_form": context.get("refuse_form") or AuthorisationRefuseForm(),
        "answer_posted": bool(context.get("grant_form") or context.get("refuse_form")),
    }

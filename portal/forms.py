from django import forms

from portal.models import Case


class CaseForm(forms.Form):
    number = forms.CharField(max_length=64, label="Case number", help_text="Your agency's reference, e.g. 2026-0412")
    title = forms.CharField(max_length=200, label="Title", help_text="A short description of the investigation")


class CaseCloseForm(forms.Form):
    # Closing stops every search in the case, so it takes a deliberate tick, checked here and not only in the browser.
    confirm = forms.BooleanField(label="I want to close this case")


class CaseFilterForm(forms.Form):
    status = forms.ChoiceField(choices=[("", "Any status"), *Case.Status.choices], required=False)
    number = forms.CharField(required=False, label="Number")
    title = forms.CharField(required=False, label="Title")


class AuditFilterForm(forms.Form):
    from portal.models import AuditEntry

    username = forms.CharField(required=False, label="User")
    case = forms.CharField(required=False, label="Case number")
    action = forms.ChoiceField(required=False, choices=[("", "Any action"), *AuditEntry.Action.choices])
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

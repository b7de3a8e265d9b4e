from django import forms
from django.conf import settings

from search.models import OffenseCategory

MAX_PHOTOS_PER_UPLOAD = 20


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultiplePhotoField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": "image/jpeg,image/png,image/webp"}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = data if isinstance(data, (list, tuple)) else [data]
        files = [f for f in files if f]
        if not files:
            raise forms.ValidationError("Choose at least one photo.", code="required")
        if len(files) > MAX_PHOTOS_PER_UPLOAD:
            raise forms.ValidationError(f"At most {MAX_PHOTOS_PER_UPLOAD} photos at once.", code="too_many")
        return [super(MultiplePhotoField, self).clean(f, initial) for f in files]


class ProbeUploadForm(forms.Form):
    photos = MultiplePhotoField(
        label="Probe photos", help_text="JPEG, PNG or WebP, up to 20 MB each. Several photos become several searches."
    )
    purpose = forms.ModelChoiceField(
        queryset=OffenseCategory.objects.filter(is_active=True),
        to_field_name="name",
        label="Purpose (offense category)",
        empty_label="Choose…",
        error_messages={"required": "State the purpose of the search."},
    )
    sensitive = forms.BooleanField(
        required=False,
        label="Small or distant faces",
        help_text="A more sensitive detector: slower, finds smaller faces",
    )
    justification = forms.CharField(
        label="Justification",
        widget=forms.Textarea(attrs={"rows": 2}),
        min_length=settings.SEARCH_JUSTIFICATION_MIN_CHARS,
        help_text="Why this search is needed for the case (at least "
        f"{settings.SEARCH_JUSTIFICATION_MIN_CHARS} characters); it is "
        "recorded in the audit log",
        error_messages={
            "required": "Justify the search.",
            "min_length": "Justify the search in at least %(limit_value)d characters (you wrote %(show_value)d).",
        },
    )


class MultipleNistField(forms.FileField):
    """ANSI/NIST-ITL booking records (.an2, .nist, .eft); what a file is, is decided by its content."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": ".an2,.nist,.eft,.int"}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = [f for f in (data if isinstance(data, (list, tuple)) else [data]) if f]
        if not files:
            raise forms.ValidationError("Choose at least one ANSI/NIST-ITL file.", code="required")
        if len(files) > MAX_PHOTOS_PER_UPLOAD:
            raise forms.ValidationError(f"At most {MAX_PHOTOS_PER_UPLOAD} files at once.", code="too_many")
        return [super(MultipleNistField, self).clean(f, initial) for f in files]


# --- Lawful use: the authority's answer for a case (search/lawful_use.py) -----------------------------------


class _AuthorityAnswerForm(forms.Form):
    authority = forms.CharField(
        label="Authority",
        max_length=200,
        help_text="The judicial or administrative authority that decided, e.g. “District Court of Lyon”",
    )
    reference = forms.CharField(label="Reference", max_length=200, help_text="The authority's reference or file number")
    decided_on = forms.DateField(
        label="Date of the decision", widget=forms.DateInput(attrs={"type": "date"}), help_text="As on the decision"
    )


class AuthorisationGrantForm(_AuthorityAnswerForm):
    valid_until = forms.DateField(
        label="Valid until",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The last day the authorisation covers; empty: no end date",
    )
    galleries = forms.ModelMultipleChoiceField(
        queryset=None,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Galleries covered",
        help_text="None ticked: every gallery your agency may search",
    )
    offense_categories = forms.ModelMultipleChoiceField(
        queryset=OffenseCategory.objects.filter(is_active=True),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Offense categories covered",
        help_text="None ticked: every offense category",
    )

    def __init__(self, *args, galleries, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["galleries"].queryset = galleries


class AuthorisationRefuseForm(_AuthorityAnswerForm):
    refusal_reason = forms.CharField(
        label="What the authority decided, and why",
        widget=forms.Textarea(attrs={"rows": 2}),
        min_length=10,
        error_messages={"min_length": "Say in a sentence what the authority decided and why."},
    )
    confirm = forms.BooleanField(
        label="I understand that this stops every search of the case and erases its probes, results and reports",
        error_messages={"required": "Tick the box to confirm: a refusal erases the case's search data."},
    )

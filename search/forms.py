from django import forms

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
    photos = MultiplePhotoField(label="Probe photos", help_text="JPEG, PNG or WebP, up to 20 MB each. "
                                "Several photos become several searches.")
    purpose = forms.CharField(max_length=100, required=False, label="Purpose",
                              help_text="Offense category, e.g. robbery, missing person")
    justification = forms.CharField(required=False, label="Justification",
                                    widget=forms.Textarea(attrs={"rows": 2}),
                                    help_text="Why this search is needed for the case")

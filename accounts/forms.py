from django import forms

from accounts.models import AGENCY_ROLES


class SignInForm(forms.Form):
    username = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"autocomplete": "username",
                                                                           "autofocus": True}))
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class SecondFactorForm(forms.Form):
    code = forms.CharField(max_length=16, label="Code", help_text="The 6-digit code of your authenticator app, "
                           "or one of your 8-digit backup codes",
                           widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                                         "autofocus": True}))


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=[(r.value, r.label) for r in AGENCY_ROLES])

from django import forms

from accounts.models import AGENCY_ROLES


class SignInForm(forms.Form):
    username = forms.CharField(
        max_length=150, widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True})
    )
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class SecondFactorForm(forms.Form):
    code = forms.CharField(
        max_length=16,
        label="Code",
        help_text="The 6-digit code of your authenticator app, or one of your 8-digit backup codes",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
    )


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=[(r.value, r.label) for r in AGENCY_ROLES])


class InvitationForm(forms.Form):
    email = forms.EmailField(label="E-mail address")
    role = forms.ChoiceField(choices=[(r.value, r.label) for r in AGENCY_ROLES], initial="officer")


class AcceptInvitationForm(forms.Form):
    username = forms.RegexField(
        regex=r"^[\w.@+-]{3,150}$",
        max_length=150,
        label="Choose a username",
        error_messages={"invalid": "3 to 150 letters, digits and . @ + - _ only."},
    )
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 12 characters, not a common password",
    )
    password_again = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}), label="The same password again"
    )

    def clean(self):
        data = super().clean()
        if data.get("password") and data.get("password") != data.get("password_again"):
            self.add_error("password_again", "The two passwords differ.")
        return data


class PasswordChangeForm(forms.Form):
    """One's own password, with both factors: the current password and a code of the second factor."""

    current_password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}), label="Your current password"
    )
    code = forms.CharField(
        max_length=16,
        label="A code of your second factor",
        help_text="The 6-digit code of your authenticator app, or one of your backup codes",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )
    new_password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        label="New password",
        help_text="At least 12 characters, not a common password",
    )
    new_password_again = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}), label="The new password again"
    )

    def clean(self):
        data = super().clean()
        if data.get("new_password") and data.get("new_password") != data.get("new_password_again"):
            self.add_error("new_password_again", "The two passwords differ.")
        return data


class CertificationForm(forms.Form):
    """A user's face-search training (the agency admin, on the Seats page); both empty removes it."""

    trained_on = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Trained on")
    valid_until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Valid until")

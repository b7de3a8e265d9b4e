from django.contrib.auth.forms import AuthenticationForm


class SignInForm(AuthenticationForm):
    error_messages = {
        "invalid_login": "The username or password is not right. Both are case-sensitive.",
        "inactive": "This account is deactivated. Ask your agency admin.",
    }

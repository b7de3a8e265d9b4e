from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Agencies and users"

    def ready(self):
        from django.contrib.auth.signals import user_logged_in

        from accounts.middleware import session_start

        # Django's own hook for "a session was just created", on every sign-in path (portal and admin),
        # so no session escapes the idle, lifetime and sign-out-everywhere rules.
        user_logged_in.connect(
            lambda sender, request, user, **kw: session_start(request, user),
            dispatch_uid="accounts.session_start",
            weak=False,
        )

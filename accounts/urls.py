from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("login/", views.sign_in, name="login"),
    path("login/second-factor/", views.second_factor, name="second-factor"),
    path("login/enrol/", views.enrol, name="enrol"),
    path("login/enrol/qr.svg", views.enrol_qr, name="enrol-qr"),
    path("logout/", views.sign_out, name="logout"),
    path("logout/everywhere/", views.sign_out_everywhere, name="logout-everywhere"),
    path("password/", views.password_change, name="password-change"),
    path("password-reset/", views.PasswordResetView.as_view(), name="password-reset"),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_done.html"),
        name="password-reset-done",
    ),
    path("password-reset/<uidb64>/<token>/", views.PasswordResetConfirmView.as_view(), name="password-reset-confirm"),
    path(
        "password-reset/complete/",
        auth_views.PasswordResetCompleteView.as_view(template_name="accounts/password_reset_complete.html"),
        name="password-reset-complete",
    ),
    path("tokens/", views.token_list, name="tokens"),
    path("tokens/<uuid:code>/revoke/", views.token_revoke, name="token-revoke"),
    path("seats/", views.seats, name="seats"),
    path("seats/invitations/", views.invitation_send, name="invitation-send"),
    path("seats/invitations/<uuid:code>/revoke/", views.invitation_revoke, name="invitation-revoke"),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation-accept"),
    path("seats/<uuid:code>/deactivate/", views.user_deactivate, name="user-deactivate"),
    path("seats/<uuid:code>/reactivate/", views.user_reactivate, name="user-reactivate"),
    path("seats/<uuid:code>/role/", views.user_role, name="user-role"),
    path("seats/<uuid:code>/unlock/", views.user_unlock, name="user-unlock"),
    path("seats/<uuid:code>/certification/", views.user_certification, name="user-certification"),
]

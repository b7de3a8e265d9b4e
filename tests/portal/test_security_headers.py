"""Every response of the portal carries the deployment's security headers: pages, JSON, images, file
downloads, redirects and errors (400, 403, 404, 405, 410, 500), signed in or not.

The sweep walks the URL resolver: a URL that is added without a row in `requests()` fails
`test_every_url_is_in_the_sweep`, so a new URL cannot escape it. Production settings (HSTS, the HTTPS
redirect) are checked in a process of their own, as `manage.py check --deploy` is.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from unittest import mock

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.management import call_command
from django.templatetags.static import static
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.services import invitation_create, totp_device_create, user_create
from search.models import FaceImage
from tests.base import PASSWORD, photo_bytes, sign_in
from tests.portal.test_views import PortalViewTestCase


def header_problems(headers: dict[str, str]) -> list[str]:
    """What is missing or wrong among the security headers of one response (header names in any case)."""
    headers = {name.lower(): value for name, value in headers.items()}
    csp = headers.get("content-security-policy", "")
    permissions = headers.get("permissions-policy", "")
    expected = {
        "Content-Security-Policy": all(
            d in csp for d in ("default-src 'self'", "frame-ancestors 'none'", "object-src 'none'")
        )
        and "unsafe-inline" not in csp,
        "X-Content-Type-Options": headers.get("x-content-type-options") == "nosniff",
        "Referrer-Policy": headers.get("referrer-policy") == "same-origin",
        "X-Frame-Options": headers.get("x-frame-options") == "DENY",
        "Cross-Origin-Opener-Policy": headers.get("cross-origin-opener-policy") == "same-origin",
        "Permissions-Policy": all(
            f"{feature}=()" in permissions for feature in ("camera", "microphone", "geolocation", "payment", "usb")
        ),
        # Every response may carry case data, personal data or a sign-in form: never stored.
        "Cache-Control": "no-store" in headers.get("cache-control", ""),
    }
    return [f"{name}: {headers.get(name.lower())!r}" for name, ok in expected.items() if not ok]


def _url_names(resolver=None, namespace="") -> set[str]:
    """Every named URL of the portal (the admin is swept apart: its pages are Django's own)."""
    names = set()
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace != "admin":
                names |= _url_names(entry, f"{namespace}{entry.namespace}:" if entry.namespace else namespace)
        elif isinstance(entry, URLPattern):
            names.add(f"{namespace}{entry.name}")
    return names


class SecurityHeaderTests(PortalViewTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        from search.subject_requests import subject_request_complete, subject_request_file, subject_request_search

        cls.staff = user_create(username="pat", password=PASSWORD, role="platform_staff")
        cls.privacy = user_create(username="priya", password=PASSWORD, role="privacy_officer")
        # A platform user part-way through enrolment: the enrolment page and its QR code.
        cls.enrolling = user_create(username="newbie", password=PASSWORD, role="platform_staff")
        totp_device_create(user=cls.enrolling, confirmed=False)
        TOTPDevice.objects.create(user=cls.alice, name="Authenticator app", confirmed=True)
        # A password-reset link stays valid while its user does not sign in: charlie is not signed in here.
        cls.charlie.email = "charlie@south.example"
        cls.charlie.save()
        _, cls.invitation_token = invitation_create(actor=cls.erin, email="other@north.example", role="officer")
        cls.open_request = subject_request_file(kind="access", data=photo_bytes("img1.jpg"), contact="a@example.org")
        cls.answered = subject_request_file(kind="access", data=photo_bytes("img2.jpg"), contact="b@example.org")
        matches = subject_request_search(request=cls.answered, user=cls.privacy)
        subject_request_complete(
            request=cls.answered,
            user=cls.privacy,
            identity_note="ID card checked",
            profile_ids=[m["profile_id"] for m in matches],
        )
        cls.answered.refresh_from_db()
        cls.matched_face = FaceImage.objects.filter(profile_id=matches[0]["profile_id"]).first()

    def requests(self) -> dict[str, tuple[str, str, int]]:
        """Every URL name → (who asks, the URL, the status of a GET). POST-only URLs answer a GET with 405."""
        rows = {
            name: ("alice", url, 200 if method == "get" else 405) for name, (url, method) in self.object_urls().items()
        }
        for name in (
            "accounts:user-deactivate",
            "accounts:user-reactivate",
            "accounts:user-role",
            "accounts:user-unlock",
            "accounts:invitation-revoke",
            "accounts:user-certification",
        ):
            rows[name] = ("erin",) + rows[name][1:]
        rows["portal:case-disclosure"] = ("bob",) + rows["portal:case-disclosure"][1:]  # supervisors and admins
        uid = urlsafe_base64_encode(force_bytes(self.charlie.pk))
        reference, answered = self.open_request.reference, self.answered.reference
        rows.update(
            {
                "portal:dashboard": ("alice", reverse("portal:dashboard"), 200),
                "portal:case-list": ("alice", reverse("portal:case-list"), 200),
                "portal:case-create": ("alice", reverse("portal:case-create"), 200),
                "portal:audit-log": ("bob", reverse("portal:audit-log"), 200),
                "portal:audit-export": ("bob", reverse("portal:audit-export"), 200),
                "accounts:login": ("anonymous", reverse("accounts:login"), 200),
                "accounts:second-factor": ("password-only:alice", reverse("accounts:second-factor"), 200),
                "accounts:enrol": ("password-only:newbie", reverse("accounts:enrol"), 200),
                "accounts:enrol-qr": ("password-only:newbie", reverse("accounts:enrol-qr"), 200),
                "accounts:logout": ("alice", reverse("accounts:logout"), 405),
                "accounts:logout-everywhere": ("alice", reverse("accounts:logout-everywhere"), 405),
                "accounts:password-change": ("alice", reverse("accounts:password-change"), 200),
                "accounts:password-reset": ("anonymous", reverse("accounts:password-reset"), 200),
                "accounts:password-reset-done": ("anonymous", reverse("accounts:password-reset-done"), 200),
                "accounts:password-reset-confirm": (
                    "anonymous",
                    reverse(
                        "accounts:password-reset-confirm", args=[uid, default_token_generator.make_token(self.charlie)]
                    ),
                    302,
                ),
                "accounts:password-reset-complete": ("anonymous", reverse("accounts:password-reset-complete"), 200),
                "accounts:seats": ("erin", reverse("accounts:seats"), 200),
                "accounts:invitation-send": ("erin", reverse("accounts:invitation-send"), 405),
                "accounts:invitation-accept": (
                    "anonymous",
                    reverse("accounts:invitation-accept", args=[self.invitation_token]),
                    200,
                ),
                "search:gallery-list": ("erin", reverse("search:gallery-list"), 200),
                "search:review-queue": ("bob", reverse("search:review-queue"), 200),
                "search:review-mine": ("alice", reverse("search:review-mine"), 200),
                "search:gallery-enrol": ("erin", reverse("search:gallery-enrol"), 405),
                "privacy:request-new": ("anonymous", reverse("privacy:request-new"), 200),
                "privacy:request-queue": ("priya", reverse("privacy:request-queue"), 200),
                "privacy:request-detail": ("priya", reverse("privacy:request-detail", args=[reference]), 200),
                "privacy:request-search": ("priya", reverse("privacy:request-search", args=[reference]), 405),
                "privacy:request-complete": ("priya", reverse("privacy:request-complete", args=[reference]), 405),
                "privacy:request-photo": ("priya", reverse("privacy:request-photo", args=[reference]), 200),
                "privacy:request-face": (
                    "priya",
                    reverse("privacy:request-face", args=[answered, self.matched_face.code]),
                    200,
                ),
                "privacy:request-export": ("priya", reverse("privacy:request-export", args=[answered]), 200),
                # No sign-in; /readyz is 200 when only the worker heartbeat is missing, /metrics answers 127.0.0.1.
                "ops:healthz": ("anonymous", reverse("ops:healthz"), 200),
                "ops:readyz": ("anonymous", reverse("ops:readyz"), 200),
                "ops:metrics": ("anonymous", reverse("ops:metrics"), 200),
                "accounts:tokens": ("alice", reverse("accounts:tokens"), 200),
                "search:lawful-use": ("alice", reverse("search:lawful-use"), 200),
                "search:usage-report": ("erin", reverse("search:usage-report"), 200),
                "search:usage-report-csv": ("erin", reverse("search:usage-report-csv"), 200),
                "search:watchlist": ("alice", reverse("search:watchlist"), 200),
            }
        )
        # The REST API takes no session: a signed-in browser gets 401 problem+json; its documentation is public.
        public_api = {"api:schema": 200, "api:docs": 200, "api:not-found": 404} | {
            # POST-only: a GET is refused for its method before its token is looked at.
            f"api:{name}": 405
            for name in (
                "case-close",
                "case-report",
                "candidate-mark",
                "lead-verify",
                "lead-decide",
                "lead-evidence",
                "lead-clear",
                "token-revoke",
                "authorisation-grant",
                "authorisation-refuse",
                "gallery-photos",
                "gallery-nist",
            )
        }
        rows.update({name: ("alice", url, public_api.get(name, 401)) for name, url in self.api_urls().items()})
        return rows

    def client_for(self, who: str) -> Client:
        client = self.client_class()
        users = {
            "alice": self.alice,
            "bob": self.bob,
            "erin": self.erin,
            "dave": self.dave,
            "priya": self.privacy,
            "pat": self.staff,
            "newbie": self.enrolling,
        }
        if who.startswith("password-only:"):
            client.force_login(users[who.split(":")[1]])  # the second factor still to come
        elif who != "anonymous":
            sign_in(client, users[who])
        return client

    def sweep(self, requests) -> tuple[list[str], set[int], set[str]]:
        """Send each request; the problems found, and the statuses and content types seen."""
        problems, statuses, types = [], set(), set()
        for label, response in requests:
            statuses.add(response.status_code)
            types.add(response.get("Content-Type", "").split(";")[0])
            problems += [f"{label} ({response.status_code}): {p}" for p in header_problems(dict(response.items()))]
        return problems, statuses, types

    def test_every_url_is_in_the_sweep(self):
        self.assertEqual(_url_names(), set(self.requests()))

    def test_every_url_answers_with_the_headers_signed_in_and_anonymous(self):
        def responses():
            for name, (who, url, status) in self.requests().items():
                response = self.client_for(who).get(url)
                self.assertEqual(response.status_code, status, f"GET {name} as {who}")
                yield f"GET {name} as {who}", response
                yield f"GET {name} anonymously", self.client_class().get(url)

        problems, statuses, types = self.sweep(responses())
        self.assertEqual(problems, [])
        # The sweep keeps covering every kind of response, or it proves less than it says.
        self.assertLessEqual({200, 302, 405}, statuses)
        self.assertLessEqual(
            {
                "text/html",
                "application/json",
                "image/jpeg",
                "image/svg+xml",
                "application/pdf",
                "text/csv",
                "application/zip",
            },
            types,
        )

    def test_get_only_urls_answer_405_to_other_methods(self):
        """Finding 5: GET pages answered PUT and DELETE with 200."""
        answers = {}
        for name, (who, url, _) in self.requests().items():
            if name == "api:not-found":  # any method to a path that names nothing: 404
                continue
            client = self.client_for(who)
            answers[name] = (client.put(url).status_code, client.delete(url).status_code)
        self.assertEqual({name: statuses for name, statuses in answers.items() if statuses != (405, 405)}, {})

    # Pages a person reaches before both factors, by design: signing in, out, resetting a password, the public
    # request page and an invitation's link.
    BEFORE_SECOND_FACTOR = {
        "accounts:login",
        "accounts:second-factor",
        "accounts:enrol",
        "accounts:enrol-qr",
        "accounts:logout",
        "accounts:password-reset",
        "accounts:password-reset-done",
        "accounts:password-reset-confirm",
        "accounts:password-reset-complete",
        "accounts:invitation-accept",
        "privacy:request-new",
    }

    def test_every_state_changing_url_needs_the_second_factor(self):
        """Finding 5: "sign out everywhere" needed only the password step. A POST with the password alone is
        sent to the second factor (or refused) everywhere else, and changes nothing."""
        from portal.models import AuditEntry

        for name, (who, url, _) in self.requests().items():
            if name in self.BEFORE_SECOND_FACTOR:
                continue
            user = who if who in ("erin", "priya", "bob", "dave") else "alice"
            before = AuditEntry.objects.count()
            response = self.client_for(f"password-only:{user}").post(url, {"decision": "possible_lead"})
            with self.subTest(name=name):
                # The API takes no session at all: 401 (or 404, 405) whatever the session's factors.
                self.assertIn(response.status_code, (401, 404, 405) if name.startswith("api:") else (302, 405))
                if response.status_code == 302:
                    self.assertEqual(response["Location"], reverse("accounts:second-factor"))
                self.assertEqual(AuditEntry.objects.count(), before)

    def test_errors_carry_the_headers(self):
        csrf_checked = Client(enforce_csrf_checks=True)
        crashing = self.client_for("alice")
        crashing.raise_request_exception = False
        with (
            mock.patch("portal.selectors.open_cases", side_effect=RuntimeError("drill: a crash in a view")),
            self.assertLogs("django.request", "ERROR"),
        ):
            server_error = crashing.get(reverse("portal:dashboard"))
        with self.assertLogs("django.security", "ERROR"):
            bad_host = self.client.get(reverse("accounts:login"), HTTP_HOST="attacker.example")
        responses = [
            ("400 refused host", bad_host),
            (
                "400 wrong password",
                self.client.post(reverse("accounts:login"), {"username": "alice", "password": "not the password"}),
            ),
            ("403 platform user on a case page", self.client_for("pat").get(reverse("portal:dashboard"))),
            ("403 missing CSRF token", csrf_checked.post(reverse("accounts:login"), {"username": "alice"})),
            ("404 unknown URL", self.client_for("alice").get("/no-such-page/")),
            (
                "404 another agency's search",
                self.client_for("dave").get(reverse("search:job-detail", args=[self.job.code])),
            ),
            ("405 PUT on a POST-only URL", self.client_for("alice").put(reverse("accounts:logout"))),
            ("410 made-up invitation", self.client.get(reverse("accounts:invitation-accept", args=["made-up"]))),
            ("500 crash in a view", server_error),
            ("302 sign-out", self.client_for("alice").post(reverse("accounts:logout"))),
            ("400 public request without a photo", self.client.post(reverse("privacy:request-new"), {})),
        ]
        problems, statuses, _ = self.sweep(responses)
        self.assertEqual(problems, [])
        self.assertEqual({400, 403, 404, 405, 410, 500, 302}, statuses)

    def test_the_admin_pages_carry_the_headers(self):
        client = self.client_for("pat")
        admin = next(e for e in get_resolver().url_patterns if getattr(e, "namespace", None) == "admin")
        # Pages that name an object, and the autocomplete (it needs a model in its query), are left out:
        # they are Django's own views behind the same middleware.
        names = [
            e.name
            for e in admin.url_patterns
            if isinstance(e, URLPattern) and e.name not in (None, "autocomplete") and not e.pattern.regex.groups
        ]
        self.assertIn("index", names)
        problems, statuses, _ = self.sweep(
            (f"GET admin:{name}", client.get(reverse(f"admin:{name}"))) for name in names
        )
        self.assertEqual(problems, [])
        self.assertIn(200, statuses)


def test_static_files_carry_the_headers_through_whitenoise(settings, tmp_path):
    """Static files are answered by WhiteNoise inside the header middleware, as gunicorn serves them after
    scripts/run.sh's collectstatic; no-store too, as every response (portal/settings.py says why)."""
    settings.STATIC_ROOT = tmp_path
    call_command("collectstatic", interactive=False, verbosity=0)
    client = Client()  # a new handler: WhiteNoise lists STATIC_ROOT when its middleware is made
    stylesheet = static("portal/portal.css")
    first = client.get(stylesheet)
    answers = [
        ("stylesheet", 200, "text/css", first),
        ("script, brotli", 200, "text/javascript", client.get(static("portal/portal.js"), HTTP_ACCEPT_ENCODING="br")),
        ("icon, gzip", 200, "image/svg+xml", client.get(static("portal/favicon.svg"), HTTP_ACCEPT_ENCODING="gzip")),
        ("admin stylesheet", 200, "text/css", client.get(static("admin/css/base.css"))),
        ("HEAD", 200, "text/css", client.head(stylesheet)),
        ("not modified", 304, "", client.get(stylesheet, HTTP_IF_NONE_MATCH=first["ETag"])),
        ("unknown static file", 404, "text/html", client.get(static("portal/no-such-file.css"))),
    ]
    for label, status, content_type, response in answers:
        assert response.status_code == status, label
        assert response.get("Content-Type", "").split(";")[0] == content_type, label
        assert header_problems(dict(response.items())) == [], label
    assert first["Cache-Control"] == "private, no-store"  # WhiteNoise's own max-age is off
    assert b"".join(first.streaming_content) == (settings.BASE_DIR / "portal/static/portal/portal.css").read_bytes()
    assert answers[1][3]["Content-Encoding"] == "br" and answers[2][3]["Content-Encoding"] == "gzip"


PRODUCTION_PROBE = """
import json, django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="faces.example.org")
answers = [("https login", client.get("/accounts/login/", secure=True)),
           ("https public request page", client.get("/privacy/request/", secure=True)),
           ("https 404", client.get("/no-such-page/", secure=True)),
           ("http redirect to https", client.get("/accounts/login/"))]
print(json.dumps([{"label": label, "status": r.status_code, "headers": dict(r.items())} for label, r in answers]))
"""


def test_production_responses_add_strict_transport_security():
    answers = run_under_production_settings(PRODUCTION_PROBE)
    assert [a["status"] for a in answers] == [200, 200, 404, 301]
    for answer in answers:
        assert header_problems(answer["headers"]) == [], answer
        if answer["label"].startswith("https"):
            assert (
                answer["headers"].get("Strict-Transport-Security") == "max-age=31536000; includeSubDomains; preload"
            ), answer


def run_under_production_settings(probe: str):
    """Run a probe script in a process of its own with production settings (HTTPS, HSTS, no test-only
    values), as `manage.py check --deploy` sees them; what it printed last, as JSON."""
    test_only = ("OTP_PREENROL", "DJANGO_DEBUG", "SEARCH_DEFAULT_PURPOSE", "SEARCH_DEFAULT_JUSTIFICATION")
    env = {k: v for k, v in os.environ.items() if k not in test_only}
    env.update(
        PORTAL_PRODUCTION="true",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DJANGO_ALLOWED_HOSTS="faces.example.org",
        DJANGO_SETTINGS_MODULE="portal.settings",
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])

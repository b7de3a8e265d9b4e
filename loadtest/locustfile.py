"""Officers of two agencies sign in (password + TOTP), upload probe photos and poll their searches.

Run by loadtest/run.py, which makes the accounts and passes them in LOADTEST_CONFIG (a JSON file).
LOADTEST_BURST names an agency whose officers, from the time LOADTEST_BURST_FROM (seconds since the
epoch) on, also drop a batch of BURST_PHOTOS photos in one request every BURST_EVERY seconds.
Every request is also written to LOADTEST_SAMPLES (one JSON line each) for the driver's percentiles,
and uploads name themselves in an X-Load-Request header that the web server's access log records.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import random
import re
import struct
import time
from pathlib import Path

from locust import HttpUser, between, events, task

CONFIG = json.loads(Path(os.environ["LOADTEST_CONFIG"]).read_text())
BURST_AGENCY = os.environ.get("LOADTEST_BURST", "")
BURST_FROM = float(os.environ.get("LOADTEST_BURST_FROM", "inf"))
BURST_EVERY = float(os.environ.get("LOADTEST_BURST_EVERY", "30"))
BURST_PHOTOS = int(os.environ.get("LOADTEST_BURST_PHOTOS", "10"))
POLL_SECONDS = 1.0  # what the results page does
POLL_LIMIT_SECONDS = 300
PHOTOS = [(Path(p).name, Path(p).read_bytes()) for p in CONFIG["photos"]]
JOB_URL = re.compile(r"^/searches/(?P<code>[0-9a-f-]{36})/$")

_samples = open(os.environ["LOADTEST_SAMPLES"], "a", buffering=1)


@events.request.add_listener
def record_sample(request_type, name, response_time, response_length, exception=None, **_):
    _samples.write(json.dumps({"at": time.time(), "name": name, "ms": response_time, "ok": exception is None}) + "\n")


@events.quitting.add_listener
def close_samples(**_):
    _samples.close()


def totp(secret_base32: str, at: float, step: int = 30, digits: int = 6) -> str:
    """RFC 6238, as an authenticator app computes it."""
    counter = struct.pack(">Q", int(at // step))
    digest = hmac.new(base64.b32decode(secret_base32), counter, hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = (struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 10**digits
    return f"{code:0{digits}d}"


class Officer(HttpUser):
    abstract = True
    agency = ""
    accounts: itertools.count
    wait_time = between(8, 16)  # an officer looks at the results before the next photo

    def on_start(self):
        self.account = CONFIG["agencies"][self.agency]["officers"][next(self.accounts)]
        self.case_url = f"/cases/{self.account['case']}/probes/"
        self.next_batch_at = BURST_FROM + random.uniform(0, BURST_EVERY)  # the agency's batches spread out
        self.sign_in()

    def csrf(self) -> str:
        return self.client.cookies.get("csrftoken", "")

    def sign_in(self) -> None:
        self.client.get("/accounts/login/", name="sign-in page")
        self.client.post(
            "/accounts/login/",
            name="sign-in password",
            data={
                "csrfmiddlewaretoken": self.csrf(),
                "username": self.account["username"],
                "password": self.account["password"],
            },
        )
        with self.client.post(
            "/accounts/login/second-factor/",
            name="sign-in code",
            catch_response=True,
            data={"csrfmiddlewaretoken": self.csrf(), "code": totp(self.account["totp_secret"], time.time())},
        ) as response:
            if "/accounts/login" in response.url:
                response.failure(f"sign-in refused for {self.account['username']}")

    def upload(self, photos: list[tuple[str, bytes]], name: str, expect: str):
        """POST the photos; the view stores them and enqueues their searches before it answers."""
        files = [("photos", (file_name, data, "image/jpeg")) for file_name, data in photos]
        name = f"{name} [{self.agency}]"
        with self.client.post(
            self.case_url,
            name=name,
            allow_redirects=False,
            catch_response=True,
            files=files,
            headers={"X-Load-Request": name},
            data={
                "csrfmiddlewaretoken": self.csrf(),
                "purpose": "Robbery",
                "justification": "Load test: probe of a robbery suspect from CCTV",
            },
        ) as response:
            location = response.headers.get("Location", "")
            if response.status_code != 302 or not re.match(expect, location):
                response.failure(f"status {response.status_code}, to {location!r}")
                return None
            return location

    @task
    def search(self):
        if self.agency == BURST_AGENCY and time.time() >= self.next_batch_at:
            self.next_batch_at += BURST_EVERY
            self.upload(random.sample(PHOTOS, BURST_PHOTOS), "upload batch", r"^/cases/")
        location = self.upload([random.choice(PHOTOS)], "upload", JOB_URL.pattern)
        if location is None:
            return
        deadline = time.monotonic() + POLL_LIMIT_SECONDS
        while time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            with self.client.get(
                f"{location}status.json", name=f"status [{self.agency}]", catch_response=True
            ) as response:
                if response.status_code != 200:
                    response.failure(f"status {response.status_code}")
                    return
                status = response.json()
            if status["finished"]:
                self.client.get(status["results_url"], name=f"results [{self.agency}]")
                return


for _slug in CONFIG["agencies"]:
    _class_name = f"Officer_{re.sub(r'[^0-9a-zA-Z]', '_', _slug)}"
    globals()[_class_name] = type(
        _class_name,
        (Officer,),
        {
            "agency": _slug,
            "accounts": itertools.count(),
            "abstract": False,
            "fixed_count": len(CONFIG["agencies"][_slug]["officers"]),
        },
    )

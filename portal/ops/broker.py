"""A short-lived connection to the broker (Valkey / Redis) with short timeouts, for the checks, the metrics
and the workers' heartbeat.

Not the Celery app's own connection: that one retries for a long while when the broker is gone, and a
probe must answer quickly. The URL is read from the settings at every call, so a test can point it
elsewhere.
"""

from __future__ import annotations

from contextlib import contextmanager

import kombu
from django.conf import settings

TIMEOUT_SECONDS = 2.0


@contextmanager
def broker_channel():
    """A kombu channel on the broker (its .client is a Redis client); raises when it cannot be reached."""
    options = {
        **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        "max_retries": 0,
        "socket_connect_timeout": TIMEOUT_SECONDS,
        "socket_timeout": TIMEOUT_SECONDS,
    }
    with kombu.Connection(
        settings.CELERY_BROKER_URL, connect_timeout=TIMEOUT_SECONDS, transport_options=options
    ) as connection:
        yield connection.default_channel


def queue_depths(channel, queue: str) -> dict[int, int]:
    """Messages waiting in the queue, per priority step. With priorities, kombu's Redis transport keeps one
    list per step: the queue's own name for step 0, and name + separator + step for the others."""
    names = {step: f"{queue}{channel.sep}{step}" if step else queue for step in channel.priority_steps}
    pipeline = channel.client.pipeline()
    for name in names.values():
        pipeline.llen(name)
    return dict(zip(names, pipeline.execute(), strict=True))

#!/usr/bin/env python
"""Django's command-line utility. Starts the embedded servers first when no URL names others."""

import os
import sys


def main() -> None:
    from portal import embedded

    embedded.ensure_services()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except OSError as exc:
        from portal.object_storage import MediaUnavailable

        if not isinstance(exc, MediaUnavailable):
            raise
        # The object store is down: the command stored nothing it could not finish (docs/object-storage.md).
        sys.stderr.write(
            f"Error: {exc} Run the command again when the store answers: what it did not finish was not stored.\n"
        )
        sys.exit(1)


if __name__ == "__main__":
    main()

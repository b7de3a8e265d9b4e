#!/usr/bin/env python
"""Django's command-line utility. Starts the embedded servers first when no URL names others."""

import os
import sys


def main() -> None:
    from portal import embedded

    embedded.ensure_services()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

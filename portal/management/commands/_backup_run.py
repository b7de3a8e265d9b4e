"""What `backup` and `restore` share: a progress bar on stderr, a clear error, the JSON summary."""

import json
import sys

from django.core.management.base import CommandError
from tqdm import tqdm

from portal.backups import BackupError


def _progress(total, description):
    return tqdm(total=total, desc=description, unit="file", file=sys.stderr)


def run_backup_operation(command, operation, *, directory, as_json: bool):
    """Run `operation`; its summary for the command to print, or None once printed as JSON."""
    try:
        summary = operation(directory=directory, progress=_progress)
    except BackupError as exc:
        raise CommandError(str(exc)) from None
    if as_json:
        command.stdout.write(json.dumps(summary.as_dict()))
        return None
    return summary

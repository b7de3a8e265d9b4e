"""Decode every file of a folder with search.imaging.decode_photo, one after another, in this process,
and find the faces of each accepted photo as a worker does (the default engine loaded).

Run by test_decoding_memory.py in a child process whose address space is capped (RLIMIT_AS) before
Python starts, so a decoder that needs more memory than the cap fails here instead of in a worker.
Prints one JSON line per file: its outcome, the refusal if any, and the process's peak memory so far.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path


def _vm_peak_mb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmPeak:"):
            return int(line.split()[1]) // 1024
    return -1


def main(folder: str, limits: dict) -> int:
    from django.conf import settings

    settings.configure(**limits)
    from search.faces import get_engine
    from search.imaging import PhotoRejected, decode_photo
    from search.photo_faces import PhotoFaces

    engine = get_engine(settings.FACE_ENGINE)

    for path in sorted(Path(folder).iterdir()):
        try:
            photo = decode_photo(path.read_bytes())
        except PhotoRejected as exc:
            outcome, detail = "refused", str(exc)
        except MemoryError:
            outcome, detail = "memory_error", ""
        else:
            faces = PhotoFaces(photo.image, engine).find()
            outcome, detail = "accepted", f"{photo.width}x{photo.height}, {len(faces)} face(s)"
            del photo, faces
        print(
            json.dumps(
                {
                    "file": path.name,
                    "outcome": outcome,
                    "detail": detail,
                    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                    "peak_vm_mb": _vm_peak_mb(),
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], json.loads(sys.argv[2])))

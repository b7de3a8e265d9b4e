"""Start, stop or show the embedded servers: scripts/services.py start|stop|status."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from portal.embedded import main  # noqa: E402

main(sys.argv[1:])

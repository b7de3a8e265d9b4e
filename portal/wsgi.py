import os

from django.core.wsgi import get_wsgi_application

from portal import embedded

embedded.ensure_services()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
application = get_wsgi_application()

# A bucket that holds another deployment's media refuses the start (DeploymentMismatch).
from portal.object_storage import deployment_marker_start_check  # noqa: E402 - needs the settings loaded above

deployment_marker_start_check()

from django.apps import AppConfig
from django.core import checks


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Cases"

    def ready(self):
        from portal.object_storage import deployment_marker_system_check

        # Run by manage.py commands (not on import): a bucket of another deployment refuses them.
        checks.register(deployment_marker_system_check, "object_storage")

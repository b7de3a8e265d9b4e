import os

from django.core.wsgi import get_wsgi_application

from portal import embedded

embedded.ensure_services()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
application = get_wsgi_application()

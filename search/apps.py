from django.apps import AppConfig
from django.core import checks


class SearchConfig(AppConfig):
    name = "search"
    verbose_name = "Face search"

    def ready(self) -> None:
        checks.register(threshold_settings_check)


def threshold_settings_check(app_configs=None, **kwargs) -> list[checks.Error]:
    """Every manage.py command and the server refuse to start on a threshold setting the data cannot support."""
    from search.calibration import threshold_settings_problems

    return [checks.Error(problem, id="search.E001") for problem in threshold_settings_problems()]

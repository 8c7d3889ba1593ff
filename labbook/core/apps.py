from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "labbook.core"
    label = "core"
    verbose_name = "Accounts and API tokens"

    def ready(self) -> None:
        # labbook/__init__ no longer imports Celery (client users need only requests); load the app here so that
        # every Django process (web, worker, tests) binds shared_task to it, as Celery's Django layout expects.
        import labbook.celery  # noqa: F401
        from labbook.core import schema  # noqa: F401 - registers the OpenAPI auth extension

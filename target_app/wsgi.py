"""WSGI entry point for gunicorn: ``gunicorn target_app.wsgi:app``.

Settings come from ``TARGET_*`` variables. gunicorn's eventlet and gevent
workers monkey-patch before they import this module.
"""
from sioharness.core import redact

from . import quiet_errors
from .app import create_app
from .gc_setting import configure_gc
from .settings import settings_from_env

_settings = settings_from_env()
app = create_app(_settings)
configure_gc(_settings.gc, _settings.gc_log)  # in the worker, which serves: not in gunicorn's master
# gunicorn set up this worker's logging: keep secrets out of it as serve() does elsewhere.
redact.install(*redact.PACKET_LOGGERS)
quiet_errors.install()
quiet_errors.install_task_hooks(_settings.async_mode)

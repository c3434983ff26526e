"""The Docker path: the engine (``dockertools.engine``), a base image from Debian
packages (``dockertools.base``), the compose stack (``dockertools.stack``) and a
headless run in containers (``dockertools.run``)."""

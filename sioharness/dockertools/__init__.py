"""The Docker path: the engine (``sioharness.dockertools.engine``), a base image from Debian
packages (``sioharness.dockertools.base``), the compose stack (``sioharness.dockertools.stack``) and a
headless run in containers (``sioharness.dockertools.run``)."""

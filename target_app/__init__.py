"""Reference Flask-SocketIO target for load tests.

Kept free of imports on purpose: ``python -m target_app`` must monkey-patch
for eventlet or gevent before Flask, sockets or threads are imported.
Use ``target_app.app.create_app`` for the application factory.
"""

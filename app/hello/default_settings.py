"""Built-in defaults. Overridden, in order, by the file named by HELLO_SETTINGS,
HELLO_* environment variables and the ``test_config`` mapping given to ``create_app``.
"""

from __future__ import annotations

# Signing key for sessions. Required: the app refuses to start without it.
SECRET_KEY: str | None = None
# File holding the signing key (whitespace stripped); read when SECRET_KEY is empty.
SECRET_KEY_FILE: str | None = None
# Release shown in pages and headers; None reads <release root>/REVISION, else "dev".
RELEASE_ID: str | None = None
# Name of this app server process; None uses the APP_INSTANCE environment variable.
INSTANCE_NAME: str | None = None
# Number of trusted proxy hops for each X-Forwarded-* header (0 = trust none).
PROXY_FIX_X_FOR = 0
PROXY_FIX_X_PROTO = 0
PROXY_FIX_X_HOST = 0
PROXY_FIX_X_PREFIX = 0
# Text shown on the front page.
GREETING = "Hello from a WSGI fleet"
# SQLite file of the visit counter; None: hello.sqlite in the instance folder.
DATABASE: str | None = None

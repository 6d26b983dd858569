"""Module-level WSGI callable for servers that want one: ``wsgi:application``.

The deploy tooling normally loads the factory directly: ``hello:create_app()``.
"""

from hello import create_app

application = create_app()

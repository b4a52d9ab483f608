"""Admin: the dashboard of the platform. Each area registers its ModelAdmins."""

from . import apps, billing, content, users  # noqa: F401

"""Admin: the dashboard of the platform. Each area registers its ModelAdmins."""

from . import billing, content, tenants, users, webhooks  # noqa: F401

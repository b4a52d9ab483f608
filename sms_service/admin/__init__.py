"""Admin: the dashboard of the platform. Each area registers its ModelAdmins."""

from . import billing, content, providers, tenants, users, webhooks  # noqa: F401

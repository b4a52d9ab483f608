"""The baseline endpoints' tables (created by ``migrate --run-syncdb``)."""

from django.db import models


class BaselineRow(models.Model):
    """One small row per INSERT request."""

    phone = models.CharField(max_length=20)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.phone


class ReadRow(models.Model):
    """1,000 rows, read one by primary key per SELECT request."""

    phone = models.CharField(max_length=20)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.phone

"""The baseline endpoint's table (created by ``migrate --run-syncdb``)."""

from django.db import models


class BaselineRow(models.Model):
    phone = models.CharField(max_length=20)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.phone

from __future__ import annotations

from django.db import models


class Topic(models.Model):
    """A research area subscribers follow and papers are tagged with."""

    name = models.CharField(max_length=80, unique=True)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    phrases = models.JSONField(
        default=list,
        blank=True,
        help_text="Phrases matched as whole words, case-insensitively, in title, abstract and "
        "upstream keywords.",
    )
    is_active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0, help_text="Order on the signup form.")

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError


def get_owner(username: str):
    try:
        return get_user_model().objects.get(username=username)
    except get_user_model().DoesNotExist as exc:
        raise CommandError(f"no user named {username!r}") from exc

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from labbook.core.models import ApiToken, hash_token


@transaction.atomic
def token_create(*, user: AbstractBaseUser, name: str) -> tuple[ApiToken, str]:
    """Create a token and return it with its raw value, which is shown once and never stored."""
    raw = ApiToken.generate_raw()
    token = ApiToken.objects.create(user=user, name=name[:100] or "token", digest=hash_token(raw), prefix=raw[:10])
    return token, raw


def token_revoke(*, user: AbstractBaseUser, token_id: int) -> bool:
    deleted, _ = ApiToken.objects.filter(user=user, pk=token_id).delete()
    return bool(deleted)

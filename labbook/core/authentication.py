from __future__ import annotations

from django.utils import timezone
from rest_framework import authentication, exceptions

from labbook.core.models import ApiToken, hash_token


class HashedTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer lbk_…`` (``Token lbk_…`` is accepted too)."""

    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode(errors="replace").lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        raw = header[1].decode(errors="replace")
        token = ApiToken.objects.select_related("user").filter(digest=hash_token(raw)).first()
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        # Throttle the write: one update a minute is plenty to show "last used".
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return "Bearer"

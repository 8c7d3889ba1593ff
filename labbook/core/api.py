"""API error handling in one place: every error is JSON, validation errors name their field."""
from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, OperationalError
from django.http import Http404
from drf_spectacular.utils import inline_serializer
from rest_framework import exceptions, parsers, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(detail=detail)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge(f"Request body larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
    elif isinstance(exc, SuspiciousOperation):
        # Django's own request limits, raised while DRF parses the body (e.g. a form with more than
        # DATA_UPLOAD_MAX_NUMBER_FIELDS fields): a JSON 400 like any other bad input, not Django's HTML error page.
        exc = exceptions.ValidationError({"non_field_errors": [str(exc) or "The request was refused."]})
    elif isinstance(exc, OperationalError):
        # The database is unreachable (restarting, refusing connections, or no pooled connection freed up within
        # DB_POOL_TIMEOUT): a 503 says "retry later", which the Python client does, buffering what it logs.
        logger.warning("database unavailable in %s: %s", context.get("view").__class__.__name__, exc)
        exc = ServiceUnavailable("The database is unavailable; retry in a moment.")
    elif isinstance(exc, DataError):
        # The database refused a value (out of range, unstorable text) that validation let through: the client's
        # input is at fault, so say so (400) rather than fail with a 500. Logged, as it means a validator is missing.
        logger.warning("database refused a value in %s: %s", context.get("view").__class__.__name__, exc)
        exc = exceptions.ValidationError({"non_field_errors": ["A value is out of range or cannot be stored."]})
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(response.data, dict) and "detail" not in response.data and response.status_code == 400:
        response.data = {"detail": "Invalid input.", "errors": response.data}
    elif isinstance(response.data, list):
        response.data = {"detail": "Invalid input.", "errors": {"non_field_errors": response.data}}
    return response


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, except that a body nested too deeply for Python's decoder (``[[[[…]]]]``, which raises
    RecursionError rather than ValueError) is a 400 like any other malformed JSON, not a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - the document is nested too deeply.") from None
        if contains_nul(data):
            raise exceptions.ParseError("JSON parse error - text may not contain NUL (\\u0000) characters.")
        return data


def contains_nul(data) -> bool:
    """True when any string or key in a decoded JSON document holds a NUL character (PostgreSQL text and jsonb
    cannot store one, so it would fail later as a 500). Iterative: the document may be deep."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def paginated(child: serializers.Serializer, name: str) -> serializers.Serializer:
    """The schema of a LimitOffsetPagination page of ``child`` items, for views that paginate by hand."""
    return inline_serializer(name=f"Paginated{name}List", fields={
        "count": serializers.IntegerField(), "next": serializers.CharField(allow_null=True),
        "previous": serializers.CharField(allow_null=True), "results": child})


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Service temporarily unavailable, try again later."
    default_code = "service_unavailable"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request too large."
    default_code = "too_large"


__all__ = ["exception_handler", "JSONParser", "PayloadTooLarge", "Response", "paginated"]

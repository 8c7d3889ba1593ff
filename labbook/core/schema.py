"""OpenAPI description of our token authentication (drf-spectacular picks this up when the module is imported)."""
from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class HashedTokenScheme(OpenApiAuthenticationExtension):
    target_class = "labbook.core.authentication.HashedTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API token from /account/tokens/ (lbk_…)."}


# Every API operation can answer these, in the shape labbook.core.api.exception_handler gives them; documenting them
# once here keeps the schema honest (schemathesis checks that every status code we send is documented).
ERROR_RESPONSES = {
    "400": "Invalid input: `errors` names each field and what is wrong with it.",
    "401": "No or invalid credentials (a session, or `Authorization: Bearer <token>`).",
    "403": "Authenticated, but not allowed (e.g. a missing CSRF token with session authentication).",
    "404": "No such object among yours (another user's objects are not found either).",
    "413": "The request is larger than the limit the message names.",
}
HTTP_METHODS = {"get", "put", "post", "patch", "delete"}


def add_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: document the common error answers on every operation."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = {
        "type": "object",
        "properties": {"detail": {"type": "string"},
                       "errors": {"type": "object", "additionalProperties": True,
                                  "description": "field name → list of messages"}},
        "required": ["detail"],
    }
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for item in result.get("paths", {}).values():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for code, description in ERROR_RESPONSES.items():
                if not responses.get(code, {}).get("content"):
                    responses[code] = {"description": description, "content": error}
            for code, response in responses.items():  # 409/429 declared without a body: they do send one
                if code.startswith(("4", "5")) and not response.get("content"):
                    response["content"] = error
    return result

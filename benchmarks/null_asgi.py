"""A do-nothing ASGI app for the ingestion benchmark's floor: it reads the whole request body and answers 201 with a
small JSON document, like the metrics endpoint, without parsing, authenticating or storing anything. Served by
uvicorn with the flags the Labbook server gets, it measures what the HTTP round trip alone costs this client."""
from __future__ import annotations

_HEADERS = [(b"content-type", b"application/json")]
_BODY = b'{"received": 0, "stored": 0, "duplicates": 0}'


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":  # lifespan: nothing to set up
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 201, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})

"""Reading uploads: multipart bodies kept in memory under a size cap, and telling an image from anything else."""

from __future__ import annotations

import asyncio

from fastapi import Request
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from ferkit.web.workers import ApiError, Settings

MULTIPART_OVERHEAD = 64 * 1024  # part headers and boundaries on top of the file bytes themselves


class _TooLarge(Exception):
    pass


class _Stalled(Exception):
    pass


class _MemoryMultiPartParser(MultiPartParser):
    """Starlette's parser spools files over 1 MB to a temporary file; here they stay in memory (the body size is
    capped before parsing, so memory is bounded too)."""

    spool_max_size = 1 << 62


async def read_uploads(request: Request, settings: Settings, max_files: int) -> list[tuple[str, str, bytes]]:
    """(field, filename, bytes) of every file part, in memory; 413 past the size limit, 415 for a body that is
    not multipart/form-data."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise ApiError(415, "not_multipart", "send the file as multipart/form-data (field 'file')")
    limit = settings.max_upload_bytes + MULTIPART_OVERHEAD
    too_large = ApiError(413, "upload_too_large", f"upload is over the limit of {settings.max_upload_mb:g} MB")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large

    async def capped():
        total = 0
        stream = request.stream()
        while True:
            try:  # a client that stops sending must not hold its share of the upload budget for ever
                chunk = await asyncio.wait_for(anext(stream), settings.upload_timeout_s)
            except StopAsyncIteration:
                return
            except asyncio.TimeoutError:
                raise _Stalled from None
            total += len(chunk)
            if total > limit:
                raise _TooLarge
            yield chunk

    parser = _MemoryMultiPartParser(request.headers, capped(), max_files=max_files, max_fields=100)
    try:
        form = await parser.parse()
    except _TooLarge:
        raise too_large from None
    except _Stalled:
        raise ApiError(408, "upload_timeout", f"no data for {settings.upload_timeout_s:g} s; upload abandoned",
                       {"Connection": "close"}) from None
    except ClientDisconnect:
        raise ApiError(400, "client_disconnected", "the client went away during the upload") from None
    except MultiPartException as exc:
        if exc.message.startswith("Too many files"):
            raise ApiError(413, "too_many_files", f"at most {max_files} file(s) per request") from None
        raise ApiError(422, "bad_form", f"malformed upload: {exc.message}") from None
    uploads = []
    for field, value in form.multi_items():
        if hasattr(value, "read"):
            data = await value.read()
            await value.close()
            if len(data) > settings.max_upload_bytes:
                raise too_large
            uploads.append((field, value.filename or "upload", data))
    return uploads


def multipart_doc(field: str, many: bool, what: str) -> dict:
    item = {"type": "string", "format": "binary"}
    schema = {"type": "array", "items": item} if many else item
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": [field], "properties": {field: {**schema, "description": what}}}}}}}

"""PutRecords to and from JSON without botocore's shape walk: the gateway's one hot AWS call.

botocore serializes every request and parses every answer by walking the service model member by
member. On PutRecords that walk runs once per record both ways, and it was 27 % of the gateway's CPU
on ``POST /events`` into the emulator (py-spy, docs/performance.md step four). For this one operation
the wire format is small and fixed (Kinesis JSON 1.1: ``Data`` in base64, ``PartitionKey``; answers
of ``SequenceNumber``/``ShardId`` or ``ErrorCode``/``ErrorMessage``), so the request body is written
with ``json.dumps`` and a 200 answer read with ``json.loads``: the same bytes and the same dict as
botocore's (tests/producer/test_put_records_wire.py compares them on the installed botocore).
Everything else stays botocore's: the request's URL and headers (its serializer still builds them),
endpoint rules, signing, credentials, retries, timeouts, and every error answer.

Written here rather than taken from a library because none offers it: botocore has no public hook
that skips its serializer or parser. It plugs in where botocore's own ``ParamValidationDecorator``
sits (the client's serializer) and where aiobotocore's parser factory sits (the endpoint's). Both
are private attributes, so ``install`` checks their shape and, if a botocore upgrade moved them,
leaves the client as it is and logs a warning: slower, never wrong.
"""

from __future__ import annotations

import json
import logging
from base64 import b64encode
from typing import Any

from botocore.utils import lowercase_dict
from botocore.validate import ParamValidationDecorator

__all__ = ["install"]

logger = logging.getLogger(__name__)

_OPERATION = "PutRecords"
_OUTPUT = "PutRecordsOutput"


class _Fallback(Exception):
    """The call is not the plain shape this module writes: botocore serializes it."""


class _PutRecordsSerializer:
    """botocore's serializer interface; PutRecords of plain entries written directly."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def serialize_to_request(self, parameters: dict[str, Any], operation_model: Any) -> Any:
        if operation_model.name != _OPERATION or parameters.keys() != {"StreamName", "Records"}:
            return self._inner.serialize_to_request(parameters, operation_model)
        try:
            body = _put_records_body(parameters["StreamName"], parameters["Records"])
        except _Fallback:
            return self._inner.serialize_to_request(parameters, operation_model)
        # botocore builds the URL, headers and method from a call without records; the body is ours.
        request = self._inner.serialize_to_request(
            {"StreamName": parameters["StreamName"], "Records": []}, operation_model
        )
        request["body"] = body
        return request


def _put_records_body(stream: Any, records: Any) -> bytes:
    """The body botocore's JSON serializer writes for entries of exactly ``Data`` (bytes) and
    ``PartitionKey`` (str), in that order; ``_Fallback`` for anything else."""
    if not isinstance(stream, str) or not isinstance(records, list):
        raise _Fallback
    entries = []
    for record in records:
        if type(record) is not dict or len(record) != 2:
            raise _Fallback
        data, key = record.get("Data"), record.get("PartitionKey")
        if type(data) is not bytes or type(key) is not str:
            raise _Fallback
        entries.append({"Data": b64encode(data).decode("ascii"), "PartitionKey": key})
    return json.dumps({"StreamName": stream, "Records": entries}).encode("utf-8")


class _PutRecordsParser:
    """aiobotocore's parser interface; a 200 answer to PutRecords read directly."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def parse(self, response: dict[str, Any], shape: Any) -> Any:
        if shape is None or shape.name != _OUTPUT or response["status_code"] != 200:
            return await self._inner.parse(response, shape)
        parsed = json.loads(response["body"]) if response["body"] else {}
        if type(parsed) is not dict:
            return await self._inner.parse(response, shape)
        headers = response["headers"]  # aiobotocore's: names already in lower case
        metadata: dict[str, Any] = {}
        if "x-amzn-requestid" in headers:
            metadata["RequestId"] = headers["x-amzn-requestid"]
        metadata["HTTPStatusCode"] = 200
        metadata["HTTPHeaders"] = lowercase_dict(headers)
        parsed["ResponseMetadata"] = metadata
        return parsed

    def __getattr__(self, name: str) -> Any:  # the endpoint also asks the parser about error shapes
        return getattr(self._inner, name)


class _ParserFactory:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def create_parser(self, protocol_name: str) -> Any:
        parser = self._inner.create_parser(protocol_name)
        return _PutRecordsParser(parser) if protocol_name == "json" else parser


def install(client: Any) -> bool:
    """Route ``client``'s PutRecords through this module (a Kinesis aiobotocore client made with
    ``parameter_validation=False``, as the gateway's write client is); False, with a warning, for a
    client that validates parameters or when botocore's internals are not where this expects them."""
    serializer: Any = getattr(client, "_serializer", None)
    endpoint: Any = getattr(client, "_endpoint", None)
    factory: Any = getattr(endpoint, "_response_parser_factory", None)
    protocol = client.meta.service_model.resolved_protocol
    reason = None
    if isinstance(serializer, ParamValidationDecorator):
        # This path does not validate parameters; a client asked to validate keeps botocore's.
        reason = "the client validates parameters"
    elif (
        protocol != "json"
        or not callable(getattr(serializer, "serialize_to_request", None))
        or not callable(getattr(factory, "create_parser", None))
    ):
        reason = "botocore's client internals moved"
    if reason is not None:
        logger.warning(
            "PutRecords goes through botocore's own serializer and parser",
            extra={"reason": reason, "protocol": protocol},
        )
        return False
    if not isinstance(serializer, _PutRecordsSerializer):
        client._serializer = _PutRecordsSerializer(serializer)
    if not isinstance(factory, _ParserFactory):
        endpoint._response_parser_factory = _ParserFactory(factory)
    return True

"""What the agent and its client agree on beyond paths and JSON bodies (docs/AGENT.md, "HTTP API").

The error codes are the `"error"` of an answer `{"error": code, "message": ...}`: the client maps them
back to its exceptions, so they are a protocol and never change their spelling.
"""

from __future__ import annotations

import re

#: The request header of an upload whose bytes the client knows the SHA-256 of: the agent marks the
#: volume complete only if the bytes written have that digest.
EXPECTED_DIGEST_HEADER = "X-Expected-SHA256"
#: The request header of a store write sent by the engine that leads the OVF updater: its leadership
#: term, a decimal number. The agent refuses the write (409 `stale_term`) when the domain has been written
#: under a higher term (`storage.fencing`); without the header a write is not fenced.
TERM_HEADER = "X-Ovfstore-Term"
#: A SHA-256 as both sides write it: 64 hexadecimal digits (either case).
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
#: A feature of `GET /health`'s `"features"`: `PUT .../data` takes a `Content-Range` and `POST .../copy`
#: an `"offset"`, writing only that range. An agent older than it ignores both and writes from offset 0,
#: over the bytes before the range: ask `health()` before appending to a store.
RANGED_WRITES = "ranged_writes"
#: What this agent offers beyond the first version of the protocol (`GET /health`, `"features"`).
FEATURES = (RANGED_WRITES,)

# --- error codes the agent answers with ---------------------------------------------------------------
# Every error answer also carries `"transient": true|false`: whether a retry may succeed (an I/O error,
# a busy volume or agent) or the request fails until something is repaired or changed.

INVALID_ARGUMENT = "invalid_argument"
PATH_OUTSIDE_ROOTS = "path_outside_roots"
DESCRIPTION_TOO_LONG = "description_too_long"
INCOMPLETE_TRANSFER = "incomplete_transfer"
UNAUTHENTICATED = "unauthenticated"
NOT_FOUND = "not_found"
DOMAIN_NOT_FOUND = "domain_not_found"
IMAGE_NOT_FOUND = "image_not_found"
VOLUME_NOT_FOUND = "volume_not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"
ALREADY_EXISTS = "already_exists"
WRONG_POOL = "wrong_pool"
VOLUME_BUSY = "volume_busy"
#: The write's leadership term is lower than one the domain has accepted: the engine lost the leadership.
STALE_TERM = "stale_term"
TRANSFER_CORRUPTED = "transfer_corrupted"
LENGTH_REQUIRED = "length_required"
CAPACITY_EXCEEDED = "capacity_exceeded"
INVALID_METADATA = "invalid_metadata"
CHECKSUM_MISMATCH = "checksum_mismatch"
#: A domain file that is a link, a device or a FIFO: never read nor written (permanent).
UNSAFE_FILE = "unsafe_file"
#: A volume that claims to be an OVF store and cannot be one (COW): never adopted (permanent).
UNUSABLE_STORE = "unusable_store"
#: Reading the domain failed in a way that may pass (EIO, EAGAIN, a timeout): retry, do not pass over.
STORAGE_UNAVAILABLE = "storage_unavailable"
#: The agent serves its maximum of connections; retry shortly.
AGENT_BUSY = "agent_busy"
#: The request head did not arrive within the agent's deadline.
REQUEST_TIMEOUT = "request_timeout"
STORAGE_ERROR = "storage_error"
IO_ERROR = "io_error"
TOOL_FAILED = "tool_failed"
INTERNAL_ERROR = "internal_error"

# --- codes the client gives to failures that brought no such answer ----------------------------------

#: The agent did not answer at all (refused, reset, timed out).
UNAVAILABLE = "unavailable"
#: An error status whose body is not an error answer of the agent (a proxy in between, a crash).
HTTP_ERROR = "http_error"
#: An `AgentError` raised without a more precise code.
AGENT_ERROR = "agent_error"

"""What the agent and its client agree on beyond paths and JSON bodies (docs/AGENT.md, "HTTP API")."""

from __future__ import annotations

import re

#: The request header of an upload whose bytes the client knows the SHA-256 of: the agent marks the
#: volume complete only if the bytes written have that digest.
EXPECTED_DIGEST_HEADER = "X-Expected-SHA256"
#: A SHA-256 as both sides write it: 64 hexadecimal digits (either case).
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")

"""`GET /health`: the agent answers, and the caller's secret is right (every request carries it); what it
offers beyond the first protocol (`protocol.FEATURES`)."""

from __future__ import annotations

from ovfstore.agent import protocol
from ovfstore.agent.config import AgentConfig
from ovfstore.agent.server import Request, Response, json_response


def health(config: AgentConfig, request: Request) -> Response:
    return json_response({"status": "ok", "roots": list(config.roots), "features": list(protocol.FEATURES)})

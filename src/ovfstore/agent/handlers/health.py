"""`GET /health`: the agent answers, and the caller's secret is right (every request carries it)."""

from __future__ import annotations

from ovfstore.agent.config import AgentConfig
from ovfstore.agent.server import Request, Response, json_response


def health(config: AgentConfig, request: Request) -> Response:
    return json_response({"status": "ok", "roots": list(config.roots)})

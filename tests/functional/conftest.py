# --- host agent fixtures (tests/functional/agent_fixtures.py) ---
from tests.functional.agent_fixtures import agent, agent_factory  # noqa: F401

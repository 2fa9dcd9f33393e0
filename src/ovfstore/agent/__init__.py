"""The host agent: an HTTP service over `ovfstore.storage`, and the client the engine uses to reach it."""

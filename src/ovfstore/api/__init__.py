"""The REST API, compatible with oVirt's API v4: XML (JSON on request), SSO tokens, oVirt faults."""

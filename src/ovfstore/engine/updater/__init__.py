"""The OVF store updater: keeps every domain's OVF stores in step with the inventory.

- `pool`: regenerate the OVF of every changed, unlocked entity into the cache and mark outdated every
  domain that holds it now or held it before.
- `stores`: give each data domain its OVF store volumes.
- `domain`: stream the store tar of an outdated domain through a host agent into its stores.
- `service`: when to run: debounced events, a periodic sweep, "update now", before deactivation.
"""

"""The OVF store updater: keeps every domain's OVF stores in step with the inventory.

- `pool`: regenerate the OVF of every changed, unlocked entity into the cache and mark outdated every
  domain that holds it now or held it before.
- `records`: the `ovf_stores` rows, read and written nowhere else.
- `stores`: give each data domain its OVF store volumes.
- `domain`: stream the store tar of an outdated domain through a host agent into its stores, with
  `contents` (what the tar holds, loaded before the upload) and `failures` (host failover or failure).
- `service`: when to run: debounced events, a periodic sweep, "update now", before deactivation.
- `status`: how fresh each domain's stores are, for the API and the command line.
"""

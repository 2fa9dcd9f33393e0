"""The OVF store container, pure: the tar streamed into a store volume (with its exact length known
before the first byte), its manifest, and the JSON description of a store volume. No I/O here."""

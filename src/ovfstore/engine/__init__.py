"""The engine: inventory database, inventory commands, OVF updater, recovery."""

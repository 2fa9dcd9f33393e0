"""The `ovfstore` command line."""

"""Block storage domains (iSCSI, FC): an LVM volume group in VDSM's layout (docs/FORMATS.md 6).

`tags` and `slots` are the pure codecs of the domain's VG tags and volume metadata slots; `lvio` an
LV's bytes (activated device or segment map); `view.BlockView` a domain read from its devices alone;
`lvmcmd` the one runner of the LVM tools; `domain.BlockDomain` the writable domain the agent serves.
"""

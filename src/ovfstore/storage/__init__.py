"""VDSM on-disk formats and volume I/O: file storage domains, metadata codecs, direct I/O backends.

Pure storage code: nothing here knows about HTTP. The agent is the only process that imports it to
touch storage; offline tools may use it to read a domain directly.
"""

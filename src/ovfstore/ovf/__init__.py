"""The OVF codec: VMs and templates to oVirt-dialect OVF bytes and back; pure, no I/O."""

from ovfstore.ovf.errors import OvfError
from ovfstore.ovf.parse import MAX_DEPTH, MAX_DOCUMENT_BYTES
from ovfstore.ovf.reader import OvfReadResult, read_ovf
from ovfstore.ovf.writer import write_ovf

__all__ = ["MAX_DEPTH", "MAX_DOCUMENT_BYTES", "OvfError", "OvfReadResult", "read_ovf", "write_ovf"]

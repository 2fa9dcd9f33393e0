"""ovfstore: every storage domain describes itself.

The engine keeps the OVF of every VM and template in OVF store volumes on each storage domain that
holds the VM's disks; a domain carried to a fresh engine gives every VM and template back.
"""

__version__ = "0.1.0"

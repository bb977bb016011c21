"""The etcd v3 backend: a fleet's semaphores in an etcd cluster, for fleets and for running
several stagger servers against one store.

Rules of this package (one file per concern):
- backend.py: `EtcdBackend`, the Backend Protocol: reads, and each change's loop of view,
  core operation, lease grants and one guarded transaction.
"""

from stagger.backends.etcd.backend import EtcdBackend

__all__ = ["EtcdBackend"]

"""The etcd v3 backend: a fleet's semaphores in an etcd cluster, for fleets and for running
several stagger servers against one store (docs/backends.md shows it to operators).

Rules of this package (one file per concern; a change to one concern edits one file):
- layout.py: which key holds what, how a group is read, and what one write puts, deletes,
  guards and which leases it needs (`Layout.plan_commit`: pure, tested without etcd).
- backend.py: `EtcdBackend`, the Backend Protocol: the views it remembers, the change loop
  (view, core operation, lease grants, then the plan in one transaction, retry) and reads.
- group_commit.py: the queue of changes to one group and their in-order application.
- client.py: the transport (channels, TLS, auth, failover) and the etcd request builders.
- roles.py: server roles (one notifier among several servers) on etcd.
- url.py: the etcd:// URL and its options.
"""

from stagger.backends.etcd.backend import EtcdBackend

__all__ = ["EtcdBackend"]

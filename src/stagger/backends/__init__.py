"""Where semaphores live: one Protocol (base.Backend) and its implementations side by side."""

"""`stagger demo`: a real server and real agents on one machine, rolling through a reboot."""

"""client.sync_generated."""

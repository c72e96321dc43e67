"""client.aio."""

"""What runs the robot: the daemon (one asyncio loop, a reader per mailbox, the drainer),
its scheduled jobs (no globals), and the command line (`cli`, `opscli`, `clikit`); what an
operator runs it with: health checks, logging, backup and restore, leases between several
workers, systemd notification."""

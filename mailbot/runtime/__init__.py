"""What runs the robot: the daemon (one asyncio loop, a reader per mailbox, the drainer),
its scheduled jobs (no globals), and the command line (`cli`, `opscli`, `clikit`)."""

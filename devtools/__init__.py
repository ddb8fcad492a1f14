"""Not part of the product (left out of the wheel): private Dovecot + SMTP servers for tests,
the demo and the benchmarks (`devservers`), the demo itself, and sample data."""

"""Review by email: tokens, reading 通过/退回 replies, stage transitions. Filled by the
review issue (#5)."""

"""Bytes → values, no I/O: a message's charset, parts, attachments and flags (`parse`), the
new text of a reply and its command (`quotes`), file types by content (`sniff`), and the
office's Excel roster (`roster`). The pure core at the start of the mail's path."""

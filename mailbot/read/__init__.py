"""Bytes → values, no I/O: a message's charset, parts, attachments and flags (`parse`), the
new text of a reply and its command (`quotes`), file types by content (`sniff`), whether an
attachment can be opened and the name to show for it (`usable`, with `passwords`), and the
office's Excel roster (`roster`). The pure core at the start of the mail's path."""

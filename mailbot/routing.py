"""Classification of a parsed message: what it is, which unit sent it, which department
reviews it, with the reason for each decision. Filled by the routing issue (#4)."""

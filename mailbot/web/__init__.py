"""The staff console (L4): pages and actions for the office's operator, clerks and leaders
over the same use cases as the CLI: 稿件, held replies, quarantined mail, the outbox,
campaigns, the roster and the digest. `mailbot web` serves it; the daemon does too when
`web.enabled` is set. app.py routes, views.py reads, actions.py changes, security.py guards.
"""

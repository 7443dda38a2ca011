"""The "Stay tuned" newsletter, in four rooms whose imports point one way (top to bottom):

  announcements/  feed (the blog's RSS, read as any reader would), ledger (what is new, what
                  was announced, the run lock), emails (the announcement, rendered once),
                  dispatch (its emails through the one dispatcher), run (`invoke announce`)
  subscriptions/  addresses, tokens, subscribers (the states), sender (the confirmations through
                  the one dispatcher), emails (the confirmation email and the links), feedback,
                  the bounce reports, webhooks, views (the Flask Blueprint), app (`create_app`),
                  admin, devserver
  outgoing/       ledger (one row per email owed to a reader, whatever its kind: leases, the one
                  retry policy, each result recorded), dispatcher (the one sender of them all)
  mail/           one interface for sending any email (base), composing it (message), and the
                  mailers: outbox, smtp, mailgun; `mail.connect(settings, report)`
  then the base:  settings (every NEWSLETTER_* variable), database (SQLite, migrations only),
                  filelock, backoff, ratelimit

A room may import the rooms below it, never one above (import-linter contracts in
pyproject.toml, checked by `invoke lint` and the tests).
"""

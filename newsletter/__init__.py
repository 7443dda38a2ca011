"""The "Stay tuned" newsletter, in three rooms whose imports point one way (top to bottom):

  announcements/  feed (the blog's RSS, read as any reader would), ledger (what is new, the
                  deliveries, the run lock), emails (the announcement, rendered once), dispatch
                  (pending deliveries through the mailer), run (`invoke announce`)
  subscriptions/  addresses, tokens, subscribers (the states), queue (confirmation emails),
                  sender (drains the queue), emails (the confirmation email and the links),
                  views (the Flask Blueprint), app (`create_app`), admin, devserver
  mail/           one interface for sending any email (base), composing it (message), and the
                  mailers: outbox, smtp, mailgun; `mail.connect(settings, report)`
  then the base:  settings (every NEWSLETTER_* variable), database (SQLite, migrations only),
                  filelock, backoff, ratelimit

A room may import the rooms below it, never one above (import-linter contracts in
pyproject.toml, checked by `invoke lint` and the tests).
"""

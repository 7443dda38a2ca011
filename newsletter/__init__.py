"""The "Stay tuned" newsletter: subscribers, confirmation email, the web endpoint.

Modules, one per concern:
  config      every NEWSLETTER_* environment variable, read once into a frozen `Settings`
  store       the SQLite store (schema.sql + numbered migrations): subscribers and the email queue
  tokens      signed, opaque links for confirming and unsubscribing
  compose     the emails (multipart text + HTML) and the List-Unsubscribe headers
  transports  where email goes: `outbox` (.eml files) or `smtp`
  sender      drains the email queue through a transport, with retries and backoff
  web         the Flask app factory `create_app()` behind the "Stay tuned" form
  admin       what the `invoke subscribers.*` tasks do
Announcements (`invoke announce`):
  feedreader    the blog's RSS feed (file or URL), checked: the contract with the blog
  ledger        what is new, announcements and deliveries (migration 0002), the run lock
  announcement  the announcement email, rendered once, made per subscriber
  dispatch      sends pending deliveries (outbox, SMTP pool), retries, records each result
  mailgun       the Mailgun HTTP API (batches of 1,000 with recipient-variables)
  announce      `run()`: read, lock, select, plan, send; dry run and preview
"""

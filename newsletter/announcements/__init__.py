"""Announcements: one email per new item of the blog's feed, to every confirmed subscriber.

feed (the blog's RSS, read as any feed reader would), ledger (what is new, the announcements
and their deliveries, the run lock), emails (the announcement email, rendered once), dispatch
(pending deliveries through the mailer, each result recorded at once), run (`invoke announce`).
May ask `newsletter.subscriptions` who is confirmed, and send through `newsletter.mail`.
"""

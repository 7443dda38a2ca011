"""Subscriptions: who asked for the newsletter and their consent (double opt-in).

addresses (checked and normalised), tokens (signed links), subscribers (the states), queue (the
confirmation emails waiting to go), sender (drains the queue through the mailer), emails (the
confirmation email and the links), views (the Flask Blueprint), app (`create_app`), admin (the
`invoke subscribers.*` tasks), devserver (the endpoint under `invoke serve`).
May import `newsletter.mail`, settings and the database; never `newsletter.announcements`.
"""

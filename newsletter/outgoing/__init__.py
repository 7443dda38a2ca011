"""The outgoing-mail room: one ledger of every email owed to a reader (`ledger`) and one
dispatcher that sends them through the one mailer and records each result (`dispatcher`).

The features (subscriptions: confirmations; announcements: new articles) decide what is owed
and compose it; this room decides when it goes and records what happened. It imports only the
mail room and the base, and knows no feature: no subscriber, no announcement, no template.
"""

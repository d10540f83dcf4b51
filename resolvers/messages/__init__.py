"""Direct messages: threads, messages, folders, receipts, reactions, requests, and their events.

    model    the stored shapes (THREAD, MESSAGE), error codes, the body cipher per process
    crypto   AES-GCM sealing of bodies at rest, key ids for rotation
    access   who may see a thread or a message (registered with resolvers.privacy)
    threads  direct and group threads, members, folders, requests
    member_state  a member's read marker and `declined`, written compare-and-set
    send     sendMessage: validation, idempotent retries, delivery (and its job)
    actions  read receipts, reactions, unsend, typing
    reads    inbox, messages, unread counts, "seen by"
    limits   spam limits on metadata
    events   the events members' streams carry
See docs/messages.md.
"""

from resolvers.messages import access  # noqa: F401  (registers the THREAD and MESSAGE privacy rules)

"""The customer database's domain: pure state and rules, no sockets.

    accounts   accounts and sessions
    carts      each session's cart, saved carts, the cap
    purchases  the purchase state machine, histories
    votes      the customer side of votes (recorded, counted), sellers' thumbs
    ratings    a seller's rating as clients see it
    data       the five pieces and the appliers of the database's journal records
    copy       what a frontend keeps of it: ratings, and the sessions it answers for
    api        the customer database's internal ops
"""

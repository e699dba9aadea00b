"""The product database's domain: pure state and rules, no sockets.

    catalog       items, the keyword index, reads (the database's and every copy's)
    reservations  the units each purchase holds
    votes         the product side of votes: each vote key's verdict, items' thumbs
    data          the three pieces and the appliers of the database's journal records
    api           the product database's internal ops
"""

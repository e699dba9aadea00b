"""Networking every part shares: a service on a socket, and a client of one.

    sockets   blocking sockets with kernel timeouts; reading request lines
    service   a service: its op table, dispatch, one reply per request, Stats, logging
    server    the threaded TCP server: a thread per connection, the cap, a clean stop
    client    how a server is dialled (Dialer), persistent pooled connections to it (Client),
              its health (up, or since when not)
    internal  how an internal op (frontend -> database) is declared
    secret    the deployment secret and its challenge-response
    flags     every service's command-line flags, and how it logs
    tls       TLS contexts: serving, dialling, reloading certificates
    stats     what Stats counts: requests per op and outcome, recent latency
"""

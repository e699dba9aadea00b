"""Starting a frontend: its flags beyond every service's, its two databases, then serving.

With TLS files, the frontend serves TLS only and dials its databases over TLS (the request
pools and the long polls alike), verifying each database's certificate against the CA and
the host name in ``--customer-db``/``--product-db``, and presenting its own certificate;
reloaded files (SIGHUP) are used by the connections made from then on."""
from __future__ import annotations

from market.config import (
    DEFAULT_CUSTOMER_DB_PORT,
    DEFAULT_DB_POOL,
    DEFAULT_DB_TIMEOUT,
    DEFAULT_HASH_COST,
    DEFAULT_HOST,
    DEFAULT_PRODUCT_DB_PORT,
    HASH_COST_MAX,
    HASH_COST_MIN,
)
from market.frontend.identity import MarketCheck
from market.frontend.passwords import PasswordHasher, return_big_blocks_to_the_system
from market.frontend.service import Frontend
from market.net.client import Client, Health, parse_addresses
from market.net.flags import configure_logging, env_default, load_tls, service_parser
from market.net.secret import read_secret
from market.net.server import serve


def frontend_main(frontend: type[Frontend], description: str, env_prefix: str, port: int,
                  argv: list[str] | None = None) -> None:
    parser = service_parser(description, env_prefix, port)
    env_default(parser, "--customer-db", "CUSTOMER_DB_ADDR",
                f"{DEFAULT_HOST}:{DEFAULT_CUSTOMER_DB_PORT}",
                "customer database HOST:PORT (HOST:PORT,HOST:PORT,...: its processes, one "
                "active, when it is replicated)", type=parse_addresses)
    env_default(parser, "--product-db", "PRODUCT_DB_ADDR",
                f"{DEFAULT_HOST}:{DEFAULT_PRODUCT_DB_PORT}",
                "product database HOST:PORT (HOST:PORT,HOST:PORT,...: its processes, one "
                "active, when it is replicated)", type=parse_addresses)
    env_default(parser, "--db-timeout", "DB_TIMEOUT", DEFAULT_DB_TIMEOUT,
                "seconds to wait for a database reply", type=float)
    env_default(parser, "--db-pool", "DB_POOL", DEFAULT_DB_POOL,
                "most connections kept open to each database (requests wait for a free one); "
                "a database's --max-connections must cover the pools of all its frontends",
                type=int)
    env_default(parser, "--hash-cost", "HASH_COST", DEFAULT_HASH_COST,
                "scrypt cost of new passwords, as log2 of its n "
                f"({HASH_COST_MIN} to {HASH_COST_MAX}); lower is faster and weaker, for tests",
                type=int, choices=range(HASH_COST_MIN, HASH_COST_MAX + 1), metavar="N")
    frontend.add_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging(frontend.kind, args.log_level)
    secret = read_secret(args.secret_file)
    tls = load_tls(args, mutual=False)

    def database(what: str, addresses: list[tuple[str, int]]) -> Client:
        where = ",".join("%s:%d" % address for address in addresses)
        return Client(addresses[0], args.db_timeout, secret=secret,
                      pool_size=max(1, args.db_pool), deadlines=True,
                      health=Health(f"the {what} at {where}"), tls=tls.client if tls else None,
                      alternates=tuple(addresses[1:]))

    return_big_blocks_to_the_system()
    customer = database("customer database", args.customer_db)
    product = database("product database", args.product_db)
    service = frontend(customer, product, PasswordHasher(args.hash_cost))
    service.market_check = MarketCheck(customer, product)
    if secret is not None:
        service.card_key = secret
    if tls is not None:
        tls.on_reload(lambda files: [db.dialer.use_tls(files.client) for db in (customer, product)])
    service.configure(args)
    serve(service, args, tls)

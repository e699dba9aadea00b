"""Data formats of a data directory: the marker, telling old formats apart, the upgrades.

Every data directory records its format in ``FORMAT``, a small JSON file:
``{"format": 3, "database": "customer_db"}``. The formats so far:

1. commit 78b932a (and the versions before it back to the first ``--data-dir``):
   customer records name their kind in ``"t"``; passwords hashed by the customer
   database at scrypt cost 14; a purchase is one record; a vote is one record
   with a ``step`` of +1 or -1.
2. commit 7883b9f: records name their kind in ``"kind"``; a purchase is started
   then committed; votes carry the key of the attempt that made them.
3. commit 9a04b0e: a purchase's and a vote's key derived from the client's key; an item
   vote's refused keys kept for a while.
4. this version: a vote's key names the buyer, the item and the attempt (the same on both
   databases; ``market.keys.vote_key``), and the customer database counts each buyer's
   refused votes per item (entries ``{"buyer_id", "item_id", "refusals"}`` among its
   votes). Format 3's content is format 4's as it is: its keys keep their verdicts.

Formats 1 and 2 wrote no marker: ``detect`` tells them apart by their content.
An upgrade is a chain of steps, ``STEPS[n][database]`` turning the files'
content (the snapshot's state and the journal's records) from format ``n`` to
``n + 1``: pure functions, so each is tested without files or sockets.
``check`` reads a directory's format (refusing one it does not know),
``back_up`` keeps an older format's files in ``backup-format-N/`` before the
database rewrites them (``Database.open_data_dir`` does the rest).
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Any, Callable

from market.errors import JournalError
from market.storage.journal import JOURNAL_NAME, SNAPSHOT_NAME, read_saved

CURRENT = 4
FIRST = 1
MARKER = "FORMAT"
BACKUP = "backup-format-{}"
FORMAT_1_HASH_COST = 14  # 78b932a hashed passwords with scrypt n = 2 ** 14, r = 8, p = 1

Content = tuple[Any, list[dict]]  # a snapshot's state (or None) and the records since
Step = Callable[[Any, list[dict]], Content]


# -- the marker ----------------------------------------------------------------------

def read_marker(directory: str) -> dict | None:
    """The directory's marker, or None if it has none."""
    path = os.path.join(directory, MARKER)
    try:
        with open(path, "rb") as f:
            marker = json.loads(f.read())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise JournalError(f"{path}: unreadable format marker ({exc})") from None
    if (not isinstance(marker, dict) or type(marker.get("format")) is not int
            or not isinstance(marker.get("database"), str)):
        raise JournalError(f"{path}: unreadable format marker (not a format and a database)")
    return marker


def write_marker(directory: str, database: str) -> None:
    """Record that ``directory`` holds ``database``'s data in the current format (atomically)."""
    path = os.path.join(directory, MARKER)
    with open(path + ".tmp", "wb", opener=_private) as f:
        f.write(json.dumps({"format": CURRENT, "database": database}).encode() + b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)
    _fsync_directory(directory)


def check(directory: str, database: str) -> int:
    """The format of ``directory``'s data, for ``database`` (``CustomerDB.kind`` ...):
    ``CURRENT`` for a new or current directory, an older number to upgrade from.

    Raises ``JournalError`` (changing nothing) for a newer or unknown format, or
    another database's data.
    """
    marker = read_marker(directory)
    if marker is not None:
        found = marker["format"]
        if marker["database"] != database:
            raise JournalError(f"{directory} holds the data of the {marker['database']}, "
                               f"not of the {database}: give each database its own directory")
        if not FIRST <= found <= CURRENT:
            raise JournalError(f"{directory} is in data format {found}, which this version "
                               f"does not know (it reads formats {FIRST} to {CURRENT} and "
                               f"writes {CURRENT}): start the version that wrote it instead")
        return found
    for found in range(FIRST, CURRENT):  # an upgrade that was cut short starts again
        if os.path.isdir(os.path.join(directory, BACKUP.format(found))):
            return found
    saved = read_saved(directory)
    if saved.state is None and not saved.records:
        return CURRENT
    found = detect(database, saved.state, saved.records)
    if found is None:
        raise JournalError(f"{directory} holds data that does not look like the {database}'s "
                           f"in any format this version knows ({FIRST} to {CURRENT})")
    return found


def detect(database: str, state: Any, records: list[dict]) -> int | None:
    """The format of a directory without a marker (1 or 2), told by its content; None
    if it looks like none (another database's data, or something else).

    A product database's format 1 and 2 differ only by votes' keys (format 2);
    without any, the content is the same and it is called format 1.
    """
    if database == "customer_db":
        if records and "t" in records[0]:
            return 1
        if records and "kind" in records[0]:
            return 2
        if isinstance(state, dict) and "accounts" in state:
            return 2 if "pending" in state else 1
    elif database == "product_db":
        if records and "items" in records[0] or isinstance(state, dict) and "items" in state:
            has_votes = (isinstance(state, dict) and bool(state.get("votes"))
                         or any("vote" in record for record in records))
            return 2 if has_votes else 1
    return None


# -- the backup --------------------------------------------------------------------------

def data_files(directory: str) -> list[str]:
    """The names of the marker, snapshot and journal files in ``directory``."""
    return sorted(name for name in os.listdir(directory)
                  if name in (MARKER, SNAPSHOT_NAME) or JOURNAL_NAME.fullmatch(name))


def back_up(directory: str, found: int) -> str:
    """``directory/backup-format-N``, holding copies of the format-N files as they were.

    A backup already there is complete (it appears by a rename once written) and
    is the source of truth: an upgrade cut short may have rewritten the files.
    """
    backup = os.path.join(directory, BACKUP.format(found))
    if os.path.isdir(backup):
        return backup
    partial = backup + ".tmp"
    shutil.rmtree(partial, ignore_errors=True)
    os.mkdir(partial, 0o700)
    for name in data_files(directory):
        shutil.copy2(os.path.join(directory, name), os.path.join(partial, name))
        with open(os.path.join(partial, name), "rb") as f:
            os.fsync(f.fileno())
    _fsync_directory(partial)
    os.rename(partial, backup)
    _fsync_directory(directory)
    return backup


# -- the chain of upgrades -------------------------------------------------------------

def upgrade(database: str, found: int, state: Any, records: list[dict]) -> Content:
    """The content of format ``found`` turned into the current format, step by step."""
    for number in range(found, CURRENT):
        state, records = STEPS[number][database](state, records)
    return state, records


def customer_1_to_2(state: Any, records: list[dict]) -> Content:
    """Format 1 -> 2 for the customer database.

    Records: ``"t"`` becomes ``"kind"``; an account gets its hash cost (14); a
    purchase (one record, naming a session) becomes ``start`` + ``purchase`` +
    ``save`` (format 1 emptied the saved cart on every purchase; the ``save`` of
    the then empty session cart does that); a vote (``step`` +1/-1) becomes
    ``feedback`` (with a key no frontend sends) or ``unfeedback``. Snapshot:
    accounts get their cost, votes a key, and there are no pending purchases.
    """
    sessions: dict[str, int] = {}  # token -> user id, to name the buyer of a purchase
    if state is not None:
        state = _customer_state_1_to_2(state)
        sessions.update((token, user_id) for token, _, user_id, _ in state["sessions"])
    upgraded: list[dict] = []
    for old in records:
        record = {"kind": old["t"], **{k: v for k, v in old.items() if k != "t"}}
        kind = record["kind"]
        if kind == "account":
            record["cost"] = FORMAT_1_HASH_COST
        elif kind == "login":
            sessions[record["token"]] = record["user_id"]
        if kind == "purchase":
            purchase, token = record["purchase"], record["token"]
            upgraded += [
                {"kind": "start", "token": token, "purchase_id": purchase["purchase_id"],
                 "buyer_id": sessions[token],
                 "lines": [[line["item_id"], line["quantity"]] for line in purchase["lines"]]},
                {"kind": "purchase", "purchase": purchase},
                {"kind": "save", "token": token}]
        elif kind == "feedback" and record["step"] < 0:
            upgraded.append({"kind": "unfeedback", "buyer_id": record["buyer_id"],
                             "item_id": record["item_id"]})
        elif kind == "feedback":
            upgraded.append({"kind": "feedback", "buyer_id": record["buyer_id"],
                             "item_id": record["item_id"], "vote": record["vote"],
                             "key": format_1_vote_key(record["buyer_id"], record["item_id"])})
        else:
            upgraded.append(record)
    return state, upgraded


def format_1_vote_key(buyer_id: int, item_id: int) -> str:
    """The key of a vote format 1 kept without one: one per buyer and item (as votes are),
    in a shape no frontend's random keys take."""
    return f"format-1:{buyer_id}:{item_id}"


def _customer_state_1_to_2(state: dict) -> dict:
    """Format 1's snapshot kept which items a buyer voted on, not the votes: each seller's
    first ``thumbs_up`` votes are taken as up, the rest as down, so that every seller's
    thumbs stay what they were (no one ever sees one buyer's vote)."""
    ups_left = {raw["user_id"]: raw["thumbs_up"] for raw in state["accounts"].get("seller", [])}

    def vote(seller_id: int) -> str:
        if ups_left.get(seller_id, 0) > 0:
            ups_left[seller_id] -= 1
            return "up"
        return "down"

    def account(raw: dict) -> dict:
        raw = {**raw, "cost": FORMAT_1_HASH_COST}
        if "feedback_given" in raw:  # a buyer
            sellers = dict(raw["purchased_items"])
            raw["feedback_given"] = [
                [item_id, [format_1_vote_key(raw["user_id"], item_id), vote(sellers[item_id])]]
                for item_id in raw["feedback_given"]]
        return raw
    return {"accounts": {role: [account(raw) for raw in accounts]
                         for role, accounts in state["accounts"].items()},
            "sessions": state["sessions"], "pending": [],
            "cancelled": state.get("cancelled", [])}  # before b77e17e: none


def product_1_to_2(state: Any, records: list[dict]) -> Content:
    """Format 1 -> 2 for the product database: the same content, but for the
    reservations of the versions before b77e17e (``[id, lines]`` when units were
    taken, ``[id, None]`` when given back), which become pending (the settlers then
    ask the customer database for the verdict) or released."""
    def reservation(raw: list) -> list:
        if len(raw) == 3:
            return raw
        purchase_id, lines = raw
        return [purchase_id, "pending", lines] if lines is not None \
            else [purchase_id, "released", []]

    if state is not None:
        state = {**state, "reservations": [reservation(r) for r in state["reservations"]]}
    records = [{**r, "reservation": reservation(r["reservation"])} if "reservation" in r else r
               for r in records]
    return state, records


def product_2_to_3(state: Any, records: list[dict]) -> Content:
    """Format 2 -> 3 for the product database: a snapshot of format 3 and no records.

    Format 2's records are after-images (``items``, and a ``reservation`` or a
    ``vote`` key's new state); format 3's are intents. Replaying the after-images
    here gives the state at the end, which format 3 takes as its snapshot.
    Reservations ``pending`` are called ``held`` now. A vote key's state is its
    verdict: ``counted``, or ``refused`` (format 2's ``revoked``: not counted, and never
    counted from then on).
    """
    items: dict[int, dict] = {}
    reservations: dict[str, dict] = {}
    votes: dict[str, dict] = {}

    def take(change: dict) -> None:
        for raw in change.get("items", ()):
            items.setdefault(raw["item_id"], {}).update(raw)
        for purchase_id, status, lines in change.get("reservations", ()):
            reservations[purchase_id] = {
                "purchase_id": purchase_id, "state": "held" if status == "pending" else status,
                "lines": [{"item_id": item_id, "quantity": units} for item_id, units in lines]}
        for key, _, _, status in change.get("votes", ()):
            votes[key] = {"key": key, "state": "refused" if status == "revoked" else status}

    if state is not None:
        take(state)
    for record in records:
        take({"items": record["items"],
              "reservations": [record["reservation"]] if "reservation" in record else [],
              "votes": [record["vote"]] if "vote" in record else []})
    return ({"items": [items[item_id] for item_id in sorted(items)],
             "reservations": list(reservations.values()), "votes": list(votes.values())}, [])


CUSTOMER_KINDS_2_TO_3 = {"start": "purchase_started", "purchase": "purchase_committed",
                         "cancel": "purchases_cancelled"}


def customer_2_to_3(state: Any, records: list[dict]) -> Content:
    """Format 2 -> 3 for the customer database.

    Records: three kinds renamed (``CUSTOMER_KINDS_2_TO_3``), fields as they were.
    Votes: format 2 counted a vote at once (``feedback``) and could take it back
    (``unfeedback``); format 3 records a vote, then settles it by the product
    database's verdict. A vote taken back changed nothing in the end, so it is left
    out (its ``unfeedback`` too, and from the snapshot if it was there); every other
    ``feedback`` becomes ``vote_recorded`` followed by ``votes_settled`` counted.
    Snapshot: format 2 kept everything in the accounts (counters, saved cart,
    history, votes); format 3 keeps accounts, sessions, carts, purchases and votes
    apart, and counts a seller's sales and thumbs from the purchases and votes.
    """
    taken_back, records = _votes_taken_back(state, records)
    if state is not None:
        state = _customer_state_2_to_3(state, taken_back)
    upgraded: list[dict] = []
    for record in records:
        if record["kind"] == "feedback":
            upgraded += [{**record, "kind": "vote_recorded"},
                         {"kind": "votes_settled", "counted": [record["key"]], "refused": []}]
        else:
            upgraded.append({**record,
                             "kind": CUSTOMER_KINDS_2_TO_3.get(record["kind"], record["kind"])})
    return state, upgraded


def _votes_taken_back(state: Any, records: list[dict]) -> tuple[set, list[dict]]:
    """The (buyer, item) pairs whose vote in the snapshot a record takes back, and the
    records without the votes taken back (each ``unfeedback`` and the ``feedback`` it
    undid)."""
    latest: dict[tuple[int, int], int | None] = {}  # a pair's vote: its record, None: snapshot
    for raw in (state or {}).get("accounts", {}).get("buyer", []):
        latest.update(((raw["user_id"], item_id), None) for item_id, _ in raw["feedback_given"])
    dropped: set[int] = set()
    from_snapshot: set[tuple[int, int]] = set()
    for number, record in enumerate(records):
        pair = (record.get("buyer_id"), record.get("item_id"))
        if record["kind"] == "feedback":
            latest[pair] = number
        elif record["kind"] == "unfeedback":
            undone = latest.pop(pair, None)
            dropped.add(number)
            if undone is None:
                from_snapshot.add(pair)
            else:
                dropped.add(undone)
    return from_snapshot, [r for n, r in enumerate(records) if n not in dropped]


def _customer_state_2_to_3(state: dict, taken_back: set[tuple[int, int]]) -> dict:
    fields = ("user_id", "name", "salt", "hash", "cost")
    buyers = state["accounts"].get("buyer", [])
    return {
        "accounts": {role: [{name: raw[name] for name in fields} for raw in accounts]
                     for role, accounts in state["accounts"].items()},
        "sessions": [{"token": token, "role": role, "user_id": user_id}
                     for token, role, user_id, _ in state["sessions"]],
        "carts": {"saved": [{"buyer_id": raw["user_id"], "cart": raw["saved_cart"]}
                            for raw in buyers if raw["saved_cart"]],
                  "sessions": [{"token": token, "buyer_id": user_id, "cart": cart}
                               for token, role, user_id, cart in state["sessions"]
                               if role == "buyer"]},
        "purchases": {
            "committed": [{"buyer_id": raw["user_id"], "purchase": purchase}
                          for raw in buyers for purchase in raw["purchases"]],
            "started": [{"purchase_id": purchase_id, "token": token, "buyer_id": buyer_id,
                         "lines": lines}
                        for purchase_id, token, buyer_id, lines in state["pending"]],
            "cancelled": state["cancelled"]},
        "votes": [{"buyer_id": raw["user_id"], "item_id": item_id,
                   "seller_id": dict(raw["purchased_items"])[item_id], "vote": vote,
                   "key": key, "state": "counted"}
                  for raw in buyers for item_id, (key, vote) in raw["feedback_given"]
                  if (raw["user_id"], item_id) not in taken_back]}


def unchanged(state: Any, records: list[dict]) -> Content:
    """Format 3 -> 4: the content stays as it is (format 4 only adds shapes)."""
    return state, records


STEPS: dict[int, dict[str, Step]] = {
    1: {"customer_db": customer_1_to_2, "product_db": product_1_to_2},
    2: {"customer_db": customer_2_to_3, "product_db": product_2_to_3},
    3: {"customer_db": unchanged, "product_db": unchanged},
}


def _fsync_directory(directory: str) -> None:
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)

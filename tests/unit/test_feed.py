"""Change feeds without sockets: the database's ChangeFeed (market.replication.feed:
snapshots in pages, changes queued per follower, which followers hold writes, replies
waiting for confirmations, leases running out, the bound on followers), a frontend's
Follower (market.replication.follower: when its copy answers), and the copies it keeps:
Catalog.put/clear/feed_page (market.product.catalog) and the AccountsCopy of ratings and
sessions (market.customer.copy)."""
from __future__ import annotations

import json
import queue
import threading
import time

import pytest
from helpers.inprocess import in_thread

from market import config
from market.customer.copy import AccountsCopy, RatingsCopy
from market.product.catalog import Catalog, Item
from market.replication.feed import ChangeFeed
from market.replication.follower import Follower
from protocol import ApiError, RawResult

ENTRIES = [{"id": number} for number in range(1, 6)]


def pages_of(entries: list[dict], size: int):
    """A database's ``snapshot``: up to ``size`` entries with ids above ``after``."""
    def snapshot(after: int) -> tuple[list[dict], int | None]:
        later = [entry for entry in entries if entry["id"] > after]
        return later[:size], later[size - 1]["id"] if len(later) > size else None
    return snapshot


def poll(feed: ChangeFeed, seen: int = 0, after: int | None = None, wait: float = 0.0,
         epoch: str | None = None, follower: str = "f" * 16, entries=ENTRIES, size=100) -> dict:
    """One ``Follow`` of ``follower`` (of this run's epoch unless told), its reply as the
    follower reads it off the wire."""
    reply = feed.poll(follower, feed.epoch if epoch is None else epoch, seen, after, wait,
                      pages_of(entries, size), threading.Lock())
    return json.loads(reply.json) if isinstance(reply, RawResult) else reply


def joined(feed: ChangeFeed, follower: str = "f" * 16) -> int:
    """Make ``follower`` a follower holding a lease: a one-page snapshot, then a poll that
    confirms it; the ``seen`` its next poll confirms."""
    reply = poll(feed, epoch="", follower=follower)
    assert reply["first"] and reply["next"] is None
    confirmed = poll(feed, seen=reply["upto"], follower=follower)
    assert feed.holds(follower)
    return confirmed["upto"]


# -- ChangeFeed --------------------------------------------------------------------------

def test_a_new_follower_gets_the_snapshot_in_pages_then_the_changes_made_meanwhile():
    feed = ChangeFeed(30.0)
    for number in range(3):
        feed.publish({"id": 9, "v": number})  # no follower yet: only numbered
    first = poll(feed, epoch="", size=2)
    assert first == {"epoch": feed.epoch, "upto": 3, "snapshot": ENTRIES[:2], "next": 2,
                     "first": True}
    feed.publish({"id": 1, "v": "during"})
    second = poll(feed, seen=3, after=2, size=2)
    assert second == {"epoch": feed.epoch, "upto": 3, "snapshot": ENTRIES[2:4], "next": 4,
                      "first": False}
    third = poll(feed, seen=3, after=4, size=2)
    assert (third["snapshot"], third["next"], third["first"]) == (ENTRIES[4:], None, False)
    assert poll(feed, seen=3) == {"epoch": feed.epoch, "upto": 4,
                                  "changes": [{"id": 1, "v": "during"}]}


def test_a_reply_waits_until_the_live_follower_confirmed_the_change():
    feed = ChangeFeed(30.0)
    seen = joined(feed)
    feed.publish({"id": 1, "v": "new"})
    number = feed.published
    replying = in_thread(feed.wait_seen, number)
    replying.join(0.2)
    assert replying.is_alive()
    reply = poll(feed, seen=seen)
    assert reply["changes"] == [{"id": 1, "v": "new"}] and reply["upto"] == number
    replying.join(0.1)
    assert replying.is_alive()  # told, not yet confirmed
    started = time.monotonic()
    assert poll(feed, seen=reply["upto"])["changes"] == []
    replying.join(5.0)
    assert not replying.is_alive() and time.monotonic() - started < 5.0  # not the 30 s lease


def test_publish_numbers_each_change():
    feed = ChangeFeed(30.0)
    assert [feed.publish({"id": 1, "v": v}) for v in "ab"] == [1, 2]
    assert feed.published == 2


def test_a_resent_poll_gets_the_unconfirmed_changes_again():
    feed = ChangeFeed(30.0)
    seen = joined(feed)
    feed.publish({"id": 1, "v": "a"})
    feed.publish({"id": 2, "v": "b"})
    lost = poll(feed, seen=seen)
    again = poll(feed, seen=seen)
    assert lost == again and again["changes"] == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]
    assert poll(feed, seen=again["upto"])["changes"] == []


def test_a_reply_waits_out_a_lease_never_confirmed_and_a_later_change_means_a_new_snapshot():
    feed = ChangeFeed(0.2)
    seen = joined(feed)
    feed.publish({"id": 1, "v": "unconfirmed"})
    started = time.monotonic()
    feed.wait_seen(feed.published)
    assert 0.1 <= time.monotonic() - started < 2.0
    feed.publish({"id": 1, "v": "while out"})
    started = time.monotonic()
    feed.wait_seen(feed.published)  # nobody to wait for
    assert time.monotonic() - started < 0.1
    reply = poll(feed, seen=seen)
    assert reply["first"] and reply["snapshot"] == ENTRIES and reply["upto"] == feed.published


def test_a_lease_run_out_means_a_new_snapshot_even_with_no_change_meanwhile():
    feed = ChangeFeed(0.1)
    seen = joined(feed)
    time.sleep(0.2)
    assert not feed.holds("f" * 16)
    assert poll(feed, seen=seen)["first"]


def test_a_restart_waits_out_the_previous_runs_copies_without_any_follower():
    feed = ChangeFeed(0.3)
    feed.restarted()
    started = time.monotonic()
    feed.wait_seen(feed.published)
    assert 0.25 <= time.monotonic() - started < 2.0
    started = time.monotonic()
    feed.wait_seen(feed.published)
    assert time.monotonic() - started < 0.1


def test_a_poll_of_another_epoch_gets_a_fresh_snapshot():
    feed = ChangeFeed(30.0)
    joined(feed)
    feed.publish({"id": 1, "v": "new"})
    reply = poll(feed, seen=99, epoch="0" * 16)
    assert reply["first"] and reply["snapshot"] == ENTRIES and reply["upto"] == 1
    assert poll(feed, seen=1)["changes"] == []  # 99 of another run confirmed nothing here
    assert ChangeFeed().epoch != feed.epoch


def test_a_waiting_poll_is_answered_soon_after_a_publish():
    feed = ChangeFeed(30.0)
    seen = joined(feed)
    answers = []
    polling = in_thread(lambda: answers.append(poll(feed, seen=seen, wait=5.0)))
    polling.join(0.2)
    assert polling.is_alive()
    started = time.monotonic()
    feed.publish({"id": 1, "v": "new"})
    polling.join(5.0)
    assert time.monotonic() - started < 1.0
    assert answers[0]["changes"] == [{"id": 1, "v": "new"}]


def test_changes_made_between_polls_go_in_one_reply_in_order():
    feed = ChangeFeed(30.0)
    seen = joined(feed)
    for number in range(5):
        feed.publish({"id": 1, "v": number})
    reply = poll(feed, seen=seen, wait=30.0)
    assert reply["changes"] == [{"id": 1, "v": number} for number in range(5)]
    assert reply["upto"] == seen + 5
    assert feed.stats() == {"published": seen + 5, "followers": 1, "holding": 1,
                            "polls_with_changes": 1, "changes_sent": 5}


def test_a_follower_being_snapshotted_holds_no_write():
    """Issue 28, 4: snapshot pages kept a new follower's lease, and every write waited."""
    feed = ChangeFeed(30.0)
    poll(feed, epoch="", size=2)  # the first of three pages
    feed.publish({"id": 1, "v": "during"})
    started = time.monotonic()
    feed.wait_seen(feed.published)
    assert time.monotonic() - started < 0.1 and not feed.holds("f" * 16)
    third = poll(feed, seen=0, after=poll(feed, seen=0, after=2, size=2)["next"], size=2)
    assert third["next"] is None and not feed.holds("f" * 16)
    reply = poll(feed, seen=third["upto"])  # confirms the snapshot: now it holds
    assert reply["changes"] == [{"id": 1, "v": "during"}] and feed.holds("f" * 16)


def test_a_follower_that_confirms_less_than_it_was_sent_renews_nothing():
    """Issue 28, 4: a stranger polling with seen=0 kept its lease and held every write."""
    feed = ChangeFeed(0.3)
    seen = joined(feed)
    feed.publish({"id": 1, "v": "sent, never confirmed"})
    assert poll(feed, seen=seen)["changes"]
    ends = time.monotonic() + 1.0
    while "first" not in poll(feed, seen=seen):  # polls on, confirming nothing
        assert time.monotonic() < ends  # the lease ran out: a new snapshot
        time.sleep(0.05)
    assert not feed.holds("f" * 16)
    started = time.monotonic()
    feed.wait_seen(feed.published)
    assert time.monotonic() - started < 0.1


def test_a_stranger_that_never_confirms_its_snapshot_never_holds():
    feed = ChangeFeed(30.0)
    feed.publish({"id": 1, "v": "before"})
    poll(feed, epoch="")
    for _ in range(3):
        poll(feed, seen=0)
    assert not feed.holds("f" * 16)


def test_followers_are_bounded(monkeypatch):
    monkeypatch.setattr("market.replication.feed.MAX_FOLLOWERS", 3)
    feed = ChangeFeed(30.0)
    for number in range(3):
        poll(feed, epoch="", follower=f"{number:016d}")
    with pytest.raises(ApiError) as error:
        poll(feed, epoch="", follower="x" * 16)
    assert error.value.code == "unavailable"
    assert config.MAX_FOLLOWERS >= 64  # a frontend is one per database


# -- Follower ------------------------------------------------------------------------------

class Stopped(Exception):
    """Ends a test's ``follow_forever``."""


def follow_until_stopped(follower: Follower, poll) -> None:
    try:
        follower.follow_forever(poll)
    except Stopped:
        pass


class ScriptedDatabase:
    """A Follower's ``poll``, each answered by the test in turn (``answer``)."""

    def __init__(self, follower: Follower) -> None:
        self._polls: queue.Queue = queue.Queue()
        self._replies: queue.Queue = queue.Queue()
        self._thread = in_thread(follow_until_stopped, follower, self._poll)
        self.first_poll = self._polls.get(timeout=5.0)

    def _poll(self, name: str, epoch: str, seen: int, after: int | None,
              wait: float) -> dict:
        self._polls.put((epoch, seen, after))
        reply = self._replies.get()
        if isinstance(reply, Exception):
            raise reply
        return reply

    def answer(self, reply: dict | Exception) -> tuple[str, int, int | None]:
        """Answer the poll waiting; the next poll's (epoch, seen, after), sent once the
        answer is applied."""
        self._replies.put(reply)
        return self._polls.get(timeout=5.0)

    def stop(self) -> None:
        self._replies.put(Stopped())
        self._thread.join(5.0)


def rating(seller_id: int, up: int = 0) -> dict:
    return {"seller_id": seller_id, "thumbs_up": up, "thumbs_down": 0, "items_sold": 0,
            "name": f"s{seller_id}"}


def page(entries: list[dict], upto: int, next_after: int | None, first: bool) -> dict:
    return {"epoch": "e" * 16, "upto": upto, "snapshot": entries, "next": next_after,
            "first": first}


def changes(entries: list[dict], upto: int) -> dict:
    return {"epoch": "e" * 16, "upto": upto, "changes": entries}


def copied_thumbs(follower: Follower, seller_id: int):
    return follower.read(
        lambda copy: json.loads(copy.ratings.rating(seller_id).json)["thumbs_up"],
        lambda: "asked the database")


@pytest.fixture
def follower():
    copy = AccountsCopy()
    copy.put([rating(9)])  # from before: the first page clears it
    return Follower(copy, "the customer database", length=30.0)


def test_the_copy_answers_only_once_changes_after_the_snapshot_are_applied(follower):
    database = ScriptedDatabase(follower)
    try:
        assert database.first_poll == ("", 0, None)
        assert database.answer(page([rating(1)], 4, 1, True)) == ("e" * 16, 4, 1)
        assert copied_thumbs(follower, 1) == "asked the database"
        assert database.answer(page([rating(2)], 4, None, False)) == ("e" * 16, 4, None)
        assert copied_thumbs(follower, 1) == "asked the database" and not follower.fresh()
        assert database.answer(changes([rating(1, up=3)], 5)) == ("e" * 16, 5, None)
        assert follower.fresh()
        assert copied_thumbs(follower, 1) == 3 and copied_thumbs(follower, 2) == 0
        with pytest.raises(ApiError) as error:
            follower.read(lambda copy: copy.ratings.rating(9), lambda: "asked the database")
        assert error.value.code == "not_found"
    finally:
        database.stop()


def test_an_unavailable_database_puts_the_copy_out_of_use_until_a_new_snapshot(follower):
    database = ScriptedDatabase(follower)
    try:
        database.answer(page([rating(1)], 4, None, True))
        database.answer(changes([], 4))
        assert follower.fresh()
        assert database.answer(ApiError("unavailable", "The database is down.")) == ("", 0, None)
        assert not follower.fresh() and copied_thumbs(follower, 1) == "asked the database"
    finally:
        database.stop()


def test_the_copy_goes_out_of_use_length_after_the_poll_was_sent_when_no_reply_comes():
    follower = Follower(AccountsCopy(), "the customer database", length=0.8)
    database = ScriptedDatabase(follower)
    try:
        database.answer(page([rating(1)], 4, None, True))
        sent_by = time.monotonic()  # the poll answered next was sent before this
        time.sleep(0.3)  # its answer takes a while
        database.answer(changes([], 4))
        assert follower.fresh() and copied_thumbs(follower, 1) == 0
        time.sleep(max(0.0, sent_by + 0.8 - time.monotonic()))
        assert not follower.fresh() and copied_thumbs(follower, 1) == "asked the database"
    finally:
        database.stop()


def item(item_id: int, category: int = 0, quantity: int = 4) -> Item:
    return Item(item_id, f"i{item_id}", category, ["Desk"], "used", 1999, quantity, 1)


def state(item_id: int, price: int = 1999, quantity: int = 4, up: int = 0) -> dict:
    """What the feed sends of a known item that changed."""
    return {"item_id": item_id, "price": price, "quantity": quantity, "thumbs_up": up,
            "thumbs_down": 0}


def ids(found) -> list[int]:
    return [shown["item_id"] for shown in json.loads(found.json)["items"]]


def test_an_acknowledged_change_shows_in_a_fresh_copy():
    items = Catalog()
    for item_id in (1, 2, 3):
        items.add(item(item_id))
    lock = threading.Lock()  # the database's
    feed = ChangeFeed(30.0)
    follower = Follower(Catalog(), "the product database", length=30.0)
    stop = threading.Event()

    def follow(name: str, epoch: str, seen: int, after: int | None, wait: float) -> dict:
        if stop.is_set():
            raise Stopped()
        reply = feed.poll(name, epoch, seen, after, wait,
                          lambda after: items.feed_page(after, 2), lock)
        return json.loads(reply.json) if isinstance(reply, RawResult) else reply

    following = in_thread(follow_until_stopped, follower, follow)
    try:
        deadline = time.monotonic() + 5.0
        while not follower.fresh() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert follower.read(lambda copy: ids(copy.search(0, [], 10)), list) == [1, 2, 3]
        with lock:
            items[2].quantity = 0
            feed.publish(items[2].state())
        feed.wait_seen(feed.published)
        assert follower.read(lambda copy: ids(copy.search(0, [], 10)), list) == [1, 3]
    finally:
        stop.set()
        following.join(5.0)


# -- the copies ----------------------------------------------------------------------------

def test_catalog_put_adds_new_items_and_updates_known_ones():
    copy = Catalog()
    copy.put([item(1).raw(), item(2).raw(), item(3, category=5).raw()])
    assert len(copy) == 3 and ids(copy.search(0, ["desk"], 10)) == [1, 2]
    copy.put([state(1, price=250, quantity=0, up=2), state(2, quantity=7),
              item(4).raw()])
    assert ids(copy.search(0, ["desk"], 10)) == [2, 4]
    assert ids(copy.search(0, [], 10)) == [2, 4]
    shown = json.loads(copy.item(1).json)["item"]
    assert (shown["price"], shown["quantity"], shown["thumbs_up"]) == (2.5, 0, 2)
    assert json.loads(copy.item(2).json)["item"]["quantity"] == 7


def test_catalog_clear_forgets_every_item():
    copy = Catalog()
    copy.put([item(1).raw(), item(2).raw()])
    copy.clear()
    assert len(copy) == 0 and ids(copy.search(0, [], 10)) == []
    with pytest.raises(ApiError) as error:
        copy.item(1)
    assert error.value.code == "not_found"
    copy.put([item(1, quantity=3).raw()])
    assert json.loads(copy.item(1).json)["item"]["quantity"] == 3


def test_catalog_feed_page_pages_by_id():
    items = Catalog()
    for item_id in (2, 3, 5, 8, 9):
        items.add(item(item_id))
    assert items.feed_page(0, 2) == ([item(2).raw(), item(3).raw()], 3)
    assert items.feed_page(3, 2) == ([item(5).raw(), item(8).raw()], 8)
    assert items.feed_page(8, 2) == ([item(9).raw()], None)
    assert items.feed_page(4, 10)[0] == [item(i).raw() for i in (5, 8, 9)]
    assert items.feed_page(9, 2) == ([], None)
    assert Catalog().feed_page(0, 2) == ([], None)


def test_ratings_copy_answers_the_latest_rating_put():
    copy = RatingsCopy()
    with pytest.raises(ApiError) as error:
        copy.rating(5)
    assert error.value.code == "not_found"
    for entry in (rating(5), rating(6), rating(5, up=2)):
        copy.put(entry)
    assert json.loads(copy.rating(5).json) == rating(5, up=2)
    assert json.loads(copy.rating(6).json) == rating(6)


def test_a_sessions_end_reaches_the_accounts_copy_and_drops_its_session():
    copy = AccountsCopy()
    sent = time.monotonic()
    generation = copy.sessions.generation()
    copy.sessions.keep("t1", 7, 30.0, sent, generation)
    copy.sessions.keep("t2", 8, 30.0, sent, generation)
    assert copy.sessions.lookup("t1") == 7
    copy.put([{"ended": "t1"}, rating(5)])
    assert copy.sessions.lookup("t1") is None and copy.sessions.lookup("t2") == 8
    assert json.loads(copy.ratings.rating(5).json) == rating(5)
    copy.clear()
    assert copy.sessions.lookup("t2") is None
    with pytest.raises(ApiError):
        copy.ratings.rating(5)

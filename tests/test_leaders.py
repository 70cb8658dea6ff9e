"""Leader leases of singleton duties, at the backend layer: `take_leadership` succeeds only
for a free, expired or already-held lease; `resign_leadership` frees it. On every backend."""

from __future__ import annotations

import threading
import time

from databases import execute, query
from helpers import wait_until

from conveyor.backends import Backend, open_backend


def test_of_two_owners_contending_exactly_one_wins(backend: Backend, db_url: str) -> None:
    other = open_backend(db_url)
    try:
        start = threading.Barrier(2)
        won: dict[str, bool] = {}

        def contend(store: Backend, owner: str) -> None:
            start.wait()
            won[owner] = store.take_leadership("pruner", owner, 30.0)

        threads = [threading.Thread(target=contend, args=(store, owner))
                   for store, owner in ((backend, "a"), (other, "b"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(won.values()) == [False, True], won
        leader = "a" if won["a"] else "b"
        follower = "b" if leader == "a" else "a"
        # The leader renews; the other keeps failing while the lease runs.
        assert backend.take_leadership("pruner", leader, 30.0)
        assert not other.take_leadership("pruner", follower, 30.0)
        # Leases are per duty.
        assert other.take_leadership("rollups", follower, 30.0)
        assert query(db_url, "SELECT duty, owner FROM conveyor_leaders ORDER BY duty") == [
            ("pruner", leader), ("rollups", follower)]
    finally:
        other.close()


def test_an_expired_lease_is_taken_over(backend: Backend, db_url: str) -> None:
    assert backend.take_leadership("pruner", "a", 0.5)
    assert not backend.take_leadership("pruner", "b", 30.0)
    wait_until(lambda: backend.take_leadership("pruner", "b", 30.0), timeout=10,
               interval=0.05, message="the expired lease to be taken over")
    assert not backend.take_leadership("pruner", "a", 30.0)  # the old holder lost it
    # An expiry long past (a holder that died hours ago) is taken over as well.
    execute(db_url, "UPDATE conveyor_leaders SET expires_at = expires_at - 7200")
    assert backend.take_leadership("pruner", "a", 30.0)
    assert query(db_url, "SELECT owner FROM conveyor_leaders") == [("a",)]


def test_resigning_frees_the_lease_and_only_the_holder_can(backend: Backend,
                                                            db_url: str) -> None:
    assert backend.take_leadership("pruner", "a", 30.0)
    backend.resign_leadership("pruner", "b")  # not b's: nothing happens
    assert not backend.take_leadership("pruner", "b", 30.0)
    backend.resign_leadership("pruner", "a")
    assert query(db_url, "SELECT owner FROM conveyor_leaders") == []
    before = time.time()
    assert backend.take_leadership("pruner", "b", 30.0)
    [(expires,)] = query(db_url, "SELECT expires_at FROM conveyor_leaders")
    assert before + 25 <= expires <= time.time() + 35
    backend.resign_leadership("nobody-leads-this", "b")  # no row: no error

"""Token buckets and the bounded per-client table, on a stepped clock."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from busd.qos.buckets import ClientBuckets, TokenBucket, retry_after


class TokenBucketTests(SynchronousTestCase):
    def test_starts_full_then_refuses(self) -> None:
        """A new bucket grants its whole capacity at once, then refuses."""
        bucket = TokenBucket(rate=1.0, capacity=3, now=0.0)
        self.assertEqual([bucket.take(0.0) for _ in range(3)], [0.0] * 3)
        self.assertGreater(bucket.take(0.0), 0.0)

    def test_wait_until_next_token(self) -> None:
        """A refusal says how long until the next token is due."""
        bucket = TokenBucket(rate=0.5, capacity=1, now=0.0)
        bucket.take(0.0)
        self.assertAlmostEqual(bucket.take(0.5), 1.5)
        self.assertEqual(bucket.take(2.0), 0.0)

    def test_refill_is_capped(self) -> None:
        """A long idle period refills to capacity, never beyond."""
        bucket = TokenBucket(rate=10.0, capacity=2, now=0.0)
        bucket.take(0.0)
        bucket.take(0.0)
        granted = [bucket.take(1000.0) for _ in range(3)]
        self.assertEqual(granted[:2], [0.0, 0.0])
        self.assertGreater(granted[2], 0.0)

    def test_fractional_rate_is_not_refused_by_rounding(self) -> None:
        """5 tokens a minute: a token is due after exactly 12 seconds even
        though 12 * 5/60 is a hair under 1.0 in floating point."""
        bucket = TokenBucket(rate=5 / 60, capacity=1, now=0.0)
        bucket.take(0.0)
        self.assertEqual(bucket.take(12.0), 0.0)

    def test_clock_stepping_back_takes_nothing(self) -> None:
        """A clock stepped backwards neither refills nor drains the bucket."""
        bucket = TokenBucket(rate=1.0, capacity=2, now=100.0)
        bucket.take(100.0)
        self.assertEqual(bucket.take(50.0), 0.0)
        self.assertGreater(bucket.take(50.0), 0.0)
        self.assertEqual(bucket.take(51.0), 0.0)

    def test_is_full(self) -> None:
        """is_full counts the refill due by now."""
        bucket = TokenBucket(rate=1.0, capacity=2, now=0.0)
        bucket.take(0.0)
        self.assertFalse(bucket.is_full(0.5))
        self.assertTrue(bucket.is_full(1.0))


class RetryAfterTests(SynchronousTestCase):
    def test_rounding(self) -> None:
        """Retry-After is whole seconds rounded up, and at least 1."""
        self.assertEqual(
            [retry_after(s) for s in (0.01, 1.0, 1.2, 59.5)],
            ["1", "1", "2", "60"],
        )


class ClientBucketsTests(SynchronousTestCase):
    def test_clients_are_independent(self) -> None:
        """One client emptying its bucket does not limit another."""
        table = ClientBuckets(rate=1.0, capacity=1, max_clients=10)
        self.assertEqual(table.take("a", 0.0), 0.0)
        self.assertGreater(table.take("a", 0.0), 0.0)
        self.assertEqual(table.take("b", 0.0), 0.0)

    def test_bounded_least_recently_used(self) -> None:
        """Past max_clients, the least recently used client is forgotten."""
        table = ClientBuckets(rate=0.001, capacity=1, max_clients=2)
        table.take("a", 0.0)
        table.take("b", 0.0)
        table.take("a", 0.0)  # "a" is now the most recent
        table.take("c", 0.0)  # evicts "b"
        self.assertEqual(len(table), 2)
        self.assertGreater(table.take("a", 0.0), 0.0, "a was kept")
        self.assertEqual(table.take("b", 0.0), 0.0, "b starts afresh")

    def test_idle_full_buckets_are_dropped(self) -> None:
        """Buckets that have refilled are dropped as other clients come,
        without a timer."""
        table = ClientBuckets(rate=1.0, capacity=1, max_clients=100)
        for i in range(10):
            table.take(f"c{i}", 0.0)
        self.assertEqual(len(table), 10)
        for i in range(10):
            table.take("busy", 5.0 + i * 0.001)
        self.assertEqual(len(table), 1)

    def test_active_buckets_are_kept(self) -> None:
        """A bucket still refilling is not dropped by the sweep."""
        table = ClientBuckets(rate=0.01, capacity=1, max_clients=100)
        table.take("slow", 0.0)
        table.take("other", 1.0)
        table.take("other", 2.0)
        self.assertGreater(table.take("slow", 3.0), 0.0)

    def test_long_keys_are_digested(self) -> None:
        """A huge key is stored as a short digest, and still identifies
        its client."""
        table = ClientBuckets(rate=0.001, capacity=1, max_clients=10)
        key = "k" * 10_000
        table.take(key, 0.0)
        stored = next(iter(table._buckets))
        self.assertEqual(len(stored), 16)
        self.assertGreater(table.take(key, 0.0), 0.0)
        self.assertEqual(table.take(key + "x", 0.0), 0.0)

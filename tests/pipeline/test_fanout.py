"""Tests for busd.pipeline._fanout: one timer for a parallel fan-out."""

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from busd.errors import BackendTimeout
from busd.pipeline._fanout import gather_timed


def _timeout() -> BaseException:
    return BackendTimeout("backend timed out after 1s")


class GatherTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()

    def test_results_in_call_order(self) -> None:
        """Outcomes come in call order, errors consumed as (False, failure)."""
        a, b = Deferred(), Deferred()
        d = gather_timed([a, b], 1.0, self.clock, _timeout)
        b.callback("B")
        a.errback(ValueError("down"))
        [(ok_a, fail_a), (ok_b, value_b)] = self.successResultOf(d)
        self.assertEqual((ok_a, ok_b, value_b), (False, True, "B"))
        self.assertTrue(fail_a.check(ValueError))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_one_timer_times_out_the_rest(self) -> None:
        """At the deadline the running calls are cancelled and time out."""
        cancelled = []
        a, b = Deferred(lambda _: cancelled.append("a")), Deferred()
        d = gather_timed([a, b], 1.0, self.clock, _timeout)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        b.callback("B")
        self.clock.advance(1.0)
        [(ok_a, fail_a), (ok_b, _)] = self.successResultOf(d)
        self.assertEqual((cancelled, ok_a, ok_b), (["a"], False, True))
        self.assertTrue(fail_a.check(BackendTimeout))

    def test_cancel_cancels_every_running_call(self) -> None:
        """Cancelling the result cancels the running calls and the timer."""
        cancelled = []
        a = Deferred(lambda _: cancelled.append("a"))
        d = gather_timed([a, succeed("B")], 1.0, self.clock, _timeout)
        d.cancel()
        # As DeferredList: the calls' outcomes, the cancelled one a
        # CancelledError (the merge turns that into the endpoint's).
        [(ok_a, fail_a), (ok_b, _)] = self.successResultOf(d)
        self.assertEqual((ok_a, ok_b), (False, True))
        self.assertTrue(fail_a.check(CancelledError))
        self.assertEqual(cancelled, ["a"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancel_before_any_answer_fails(self) -> None:
        """A call whose canceller does not fire it still ends the wait."""
        a: Deferred = Deferred()
        d = gather_timed([a], 1.0, self.clock, _timeout)
        d.cancel()
        [(ok, failure)] = self.successResultOf(d)
        self.assertTrue(failure.check(CancelledError))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_all_done_at_once(self) -> None:
        """Calls already answered give the result at once, with no timer."""
        d = gather_timed([succeed(1), succeed(2)], 1.0, self.clock, _timeout)
        self.assertEqual(self.successResultOf(d), [(True, 1), (True, 2)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_no_deadline(self) -> None:
        """A zero budget sets no timer."""
        a = Deferred()
        d = gather_timed([a], 0, self.clock, _timeout)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        a.callback(1)
        self.assertEqual(self.successResultOf(d), [(True, 1)])

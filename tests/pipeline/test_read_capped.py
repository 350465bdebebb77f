"""read_capped: a cancelled body read closes the connection."""

from twisted.internet.defer import CancelledError
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone
from twisted.python.failure import Failure

from busd.errors import BodyTooLarge
from busd.pipeline.call import read_capped


class _Producer:
    stopped = 0

    def stopProducing(self):
        self.stopped += 1


class _Response:
    """A response whose body arrives only when the test says so."""

    length = None

    def __init__(self):
        self.producer = _Producer()
        self.protocol = None

    def deliverBody(self, protocol):
        self.protocol = protocol
        protocol.makeConnection(self.producer)


class ReadCappedTests(SynchronousTestCase):
    def test_cancel_stops_the_body(self):
        """Cancelling a stalled read (timeout, client gone) drops the
        connection instead of leaving it open."""
        response = _Response()
        d = read_capped(response, 100)
        response.protocol.dataReceived(b'{"a":')
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(response.producer.stopped, 1)
        response.protocol.connectionLost(Failure(ResponseDone()))  # no error

    def test_cap_and_done(self):
        """Past the cap the read fails and stops; within it the body is joined."""
        response = _Response()
        d = read_capped(response, 4)
        response.protocol.dataReceived(b"12345")
        self.failureResultOf(d, BodyTooLarge)
        self.assertEqual(response.producer.stopped, 1)
        response = _Response()
        d = read_capped(response, 4)
        response.protocol.dataReceived(b"12")
        response.protocol.dataReceived(b"34")
        response.protocol.connectionLost(Failure(ResponseDone()))
        self.assertEqual(self.successResultOf(d), b"1234")

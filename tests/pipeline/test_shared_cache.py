"""shared http-cache: two endpoints whose backends call the same URL with
different shaping (allow lists) get each other's shaped answers."""
from twisted.trial.unittest import SynchronousTestCase
from busd.testing import JSONBackend
from tests.helpers import B1, Gateway, config, get



class SharedCacheMix(SynchronousTestCase):
    def test_shared_cache_keeps_each_backends_shape(self):
        """A shared cache never serves one backend's shaped answer to another
        backend on the same URL with other allow/deny rules."""
        backend = JSONBackend({"/v": (200, {"speed": 40, "driver_pin": "1234"})})
        cache = {"qos/http-cache": {"shared": True}}
        eps = [
            {"endpoint": "/internal", "method": "GET", "cache_ttl": "60s",
             "backend": [{"host": [B1], "url_pattern": "/v", "extra_config": cache}]},
            {"endpoint": "/public", "method": "GET", "cache_ttl": "60s",
             "backend": [{"host": [B1], "url_pattern": "/v", "allow": ["speed"],
                          "extra_config": cache}]},
        ]
        gw = Gateway(config(eps), {B1: backend})
        _, body1 = get(self, gw, "/internal")
        _, body2 = get(self, gw, "/public")

        # /public's backend only allows "speed"; it must never expose driver_pin
        self.assertNotIn(b"driver_pin", body2)

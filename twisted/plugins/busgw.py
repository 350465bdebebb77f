from twisted.application.service import ServiceMaker

busgw = ServiceMaker(
    "busgw",
    "busd.service",
    "busgw: a fleet API gateway reading KrakenD v3 configs",
    "busgw",
)

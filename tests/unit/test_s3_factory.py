"""ClientCache: one S3 client per profile over one shared transport (mirror and object API)."""

from __future__ import annotations

from pos3lite.profiles import Profile
from pos3lite.s3.factory import ClientCache
from pos3lite.transport.base import MockTransport, Response


class _Counting(MockTransport):
    def __init__(self) -> None:
        super().__init__(lambda r: Response(200, {}))
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def _cache(transport: MockTransport | None = None) -> ClientCache:
    return ClientCache(max_connections=4, timeout=(1.0, 2.0), max_attempts=3, transport=transport)


def test_one_client_per_profile_all_over_the_given_transport() -> None:
    t = _Counting()
    cache = _cache(t)
    a = Profile("a", "http://127.0.0.1:1", region="eu-west-1", public=True)
    b = Profile("b", "http://127.0.0.1:2", region="us-east-2", public=True)
    ca, cb = cache.get(a), cache.get(b)
    assert cache.get(a) is ca and cache.get(b) is cb and ca is not cb
    assert ca.region == "eu-west-1" and cb.region == "us-east-2"
    # Both clients send through the one transport.
    for c in (ca, cb):
        with c.request("HEAD", "bkt", "k"):
            pass
    assert [r.url.split("/")[2] for r in t.requests] == ["127.0.0.1:1", "127.0.0.1:2"]


def test_close_closes_the_transport_once_and_forgets_the_clients() -> None:
    t = _Counting()
    cache = _cache(t)
    p = Profile("a", "http://127.0.0.1:1", region="eu-west-1", public=True)
    first = cache.get(p)
    cache.close()
    cache.close()
    assert t.closed == 1
    # A client asked for afterwards is a new one over a new (urllib3) pool.
    again = cache.get(p)
    assert again is not first
    cache.close()


def test_the_pool_is_built_lazily_from_the_options() -> None:
    cache = _cache()
    client = cache.get(Profile("a", "http://127.0.0.1:1", region="eu-west-1", public=True))
    from pos3lite.transport.urllib3 import Urllib3Transport

    assert isinstance(client._transport, Urllib3Transport)
    cache.close()

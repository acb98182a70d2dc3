"""kafka-python over SASL/OAUTHBEARER against Strata validating JWTs with a JWKS: a valid token
for service-a produces and reads back; a valid token for service-b authenticates but its
principal has no ACL for the topic; an expired token, one from another issuer, one signed by a
key not in the JWKS and an unsigned one are refused at authentication.
Usage: kafka_python_oauth.py BOOTSTRAP GOOD OTHER_SUB EXPIRED WRONG_ISSUER FOREIGN_KEY UNSIGNED"""
import sys

import kafka.errors as Errors
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.net.sasl.oauth import AbstractTokenProvider

bootstrap, good, other_sub, expired, wrong_issuer, foreign_key, unsigned = sys.argv[1:8]


class Fixed(AbstractTokenProvider):
    def __init__(self, token):
        super().__init__()
        self._token = token

    def token(self):
        return self._token


def config(token):
    return dict(
        bootstrap_servers=bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider=Fixed(token),
    )


p = KafkaProducer(acks="all", **config(good))
for i in range(50):
    p.send("oauth-topic", value=b"%d" % i, partition=0).get(timeout=30)
p.close()
c = KafkaConsumer(consumer_timeout_ms=10000, **config(good))
tp = TopicPartition("oauth-topic", 0)
c.assign([tp])
c.seek_to_beginning(tp)
got = [int(m.value) for _, m in zip(range(50), c)]
c.close()
assert got == list(range(50)), got
print("oauth: service-a produced and read 50")

p = KafkaProducer(acks="all", max_block_ms=10000, **config(other_sub))
try:
    p.send("oauth-topic", value=b"x", partition=0).get(timeout=15)
    raise AssertionError("service-b wrote without an ACL")
except Errors.TopicAuthorizationFailedError:
    print("oauth: service-b authenticated and was refused the topic")
finally:
    p.close(timeout=1)


def refused(what, token):
    p = None
    try:
        p = KafkaProducer(max_block_ms=4000, bootstrap_timeout_ms=3000, **config(token))
        p.send("oauth-topic", value=b"must not land").get(timeout=5)
    except Errors.TopicAuthorizationFailedError:
        raise AssertionError("%s authenticated" % what)
    except KafkaError as e:
        print("oauth: refused %s (%s)" % (what, type(e).__name__))
        return
    finally:
        if p is not None:
            p.close(timeout=1)
    raise AssertionError("%s was served" % what)


refused("an expired token", expired)
refused("a token from another issuer", wrong_issuer)
refused("a token signed by a key not in the JWKS", foreign_key)
refused("an unsigned token", unsigned)
print("oauth: ok")

"""The Dramatiq broker and actors of Scripts/peers/bench.py (settings and their reasons: the header of bench.py).

Worker:    dramatiq peers_dramatiq --processes 1 --threads 1   (prefetch from the environment: dramatiq_queue_prefetch)
Publisher: bench.py imports this module and calls work.send_with_options.
"""

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.middleware import default_middleware

import peers_common as common

GUARANTEES = common.MODE == "guarantees"

if GUARANTEES:
    from dramatiq.results import Results
    from dramatiq_postgres import PostgresBackend

    result_backend = PostgresBackend(url=common.DB_URL, schema=common.DRAMATIQ_SCHEMA)
    middleware = [m() for m in default_middleware] + [Results(backend=result_backend)]
    broker = RabbitmqBroker(url=common.AMQP_URL, middleware=middleware, max_priority=common.MAX_PRIORITY,
                            confirm_delivery=True)
else:
    # No middleware at all: none of the defaults is needed to run a no-op actor on RabbitMQ.
    broker = RabbitmqBroker(url=common.AMQP_URL, middleware=[], max_priority=common.MAX_PRIORITY)
dramatiq.set_broker(broker)

_options = {"store_results": True} if GUARANTEES else {}


# Dramatiq orders the messages a worker holds (its prefetch) by actor priority, lower first: `work` yields to
# `work_critical`. The broker priority (x-max-priority) orders what RabbitMQ has not delivered yet.
@dramatiq.actor(actor_name="work", queue_name=common.QUEUE, priority=100, **_options)
def work(kind, seq, published):
    common.work(kind, seq, published)


@dramatiq.actor(actor_name="work_critical", queue_name=common.QUEUE, priority=0, **_options)
def work_critical(kind, seq, published):
    common.work(kind, seq, published)

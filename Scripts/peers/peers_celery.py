"""The Celery app of Scripts/peers/bench.py (settings and their reasons: the header of bench.py).

Worker:    celery -A peers_celery worker -Q bench --without-gossip --without-mingle --without-heartbeat ...
Publisher: bench.py imports this module and calls work.apply_async.
"""

from celery import Celery
from kombu import Exchange, Queue

import peers_common as common

GUARANTEES = common.MODE == "guarantees"

app = Celery("peers")
conf = dict(
    broker_url=common.AMQP_URL,
    broker_connection_retry_on_startup=True,
    task_queues=[
        Queue(common.QUEUE, Exchange(common.QUEUE, type="direct"), routing_key=common.QUEUE,
              queue_arguments={"x-max-priority": common.MAX_PRIORITY}),
    ],
    task_default_queue=common.QUEUE,
    task_default_exchange=common.QUEUE,
    task_default_routing_key=common.QUEUE,
    task_queue_max_priority=common.MAX_PRIORITY,
    task_serializer="json",
    accept_content=["json"],
    # Acknowledge after the task ran (as Agentry does), with a prefetch equal to Agentry's: one process per worker,
    # so the multiplier is the prefetch count.
    task_acks_late=True,
    worker_prefetch_multiplier=common.PREFETCH,
    worker_hijack_root_logger=False,
)
if GUARANTEES:
    conf.update(
        task_reject_on_worker_lost=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        result_backend="db+" + common.DB_URL,
        result_extended=True,
        task_ignore_result=False,
        database_table_schemas={"task": common.CELERY_SCHEMA, "group": common.CELERY_SCHEMA},
        # Publisher confirms: a publish returns once RabbitMQ has the message.
        broker_transport_options={"confirm_publish": True},
    )
else:
    conf.update(
        result_backend=None,
        task_ignore_result=True,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
app.conf.update(conf)


@app.task(name="peers.work")
def work(kind, seq, published):
    common.work(kind, seq, published)

"""Scripts/chaos: hosts as network namespaces, a 3-node RabbitMQ cluster, PostgreSQL, and fault scenarios whose
verdicts come from the database and the publisher's own records."""

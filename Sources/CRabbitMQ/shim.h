#ifndef AGENTRY_CRABBITMQ_SHIM_H
#define AGENTRY_CRABBITMQ_SHIM_H

// rabbitmq-c 0.11 (Debian 12) installs flat headers; 0.12+ moved them under rabbitmq-c/.
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#include <rabbitmq-c/ssl_socket.h>
#else
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <amqp_ssl_socket.h>
#endif

#include <sys/eventfd.h>
#include <poll.h>

// amqp_login is variadic, which Swift cannot call: this wrapper fixes the PLAIN mechanism.
static inline amqp_rpc_reply_t agentry_amqp_login_plain(amqp_connection_state_t state, const char *vhost,
                                                       int channel_max, int frame_max, int heartbeat,
                                                       const char *user, const char *password) {
    return amqp_login(state, vhost, channel_max, frame_max, heartbeat, AMQP_SASL_METHOD_PLAIN, user, password);
}

// The same, with client properties (connection name, capabilities) shown in the management UI.
static inline amqp_rpc_reply_t agentry_amqp_login_plain_properties(amqp_connection_state_t state, const char *vhost,
                                                                  int channel_max, int frame_max, int heartbeat,
                                                                  const amqp_table_t *properties,
                                                                  const char *user, const char *password) {
    return amqp_login_with_properties(state, vhost, channel_max, frame_max, heartbeat, properties,
                                      AMQP_SASL_METHOD_PLAIN, user, password);
}

#endif

// Small fixed-argument C helpers over rabbitmq-c (librabbitmq 0.11) for HeraldBroker.
//
// Why a shim:
// - `amqp_login*` are variadic: Swift cannot call them.
// - rabbitmq-c reports results through unions (`amqp_rpc_reply_t`, `amqp_frame_t`, field values)
//   and method ids are cast macros that Swift does not import. The helpers below flatten those into
//   plain structs with integer fields, so the Swift side never pokes at unions.
// - A tiny wake-up pipe + poll() lets the connection thread sleep until either the socket or a
//   Swift task has something for it.
//
// Nothing here is thread-safe on its own: every `amqp_connection_state_t` must only ever be used
// from the single thread that created it (rabbitmq-c's rule). The wake pipe helpers are the
// exception: writing one byte to a pipe is safe from any thread.
#ifndef HERALD_CRABBITMQ_SHIM_H
#define HERALD_CRABBITMQ_SHIM_H

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stddef.h>
#include <stdint.h>

// MARK: - Result of an RPC-style call

#define HERALD_REPLY_OK 0
#define HERALD_REPLY_LIBRARY_ERROR 1     // library_error holds an AMQP_STATUS_* code
#define HERALD_REPLY_CHANNEL_CLOSE 2     // broker closed the channel (reply_code / reply_text)
#define HERALD_REPLY_CONNECTION_CLOSE 3  // broker closed the connection (reply_code / reply_text)
#define HERALD_REPLY_OTHER 4             // unexpected reply

#define HERALD_STAGE_SOCKET 0
#define HERALD_STAGE_LOGIN 1

typedef struct herald_reply_info {
  int kind;            // HERALD_REPLY_*
  int library_error;   // AMQP_STATUS_* when kind == HERALD_REPLY_LIBRARY_ERROR
  int stage;           // only for herald_connect: HERALD_STAGE_*
  uint16_t reply_code; // AMQP reply code for channel/connection close
  char reply_text[256];  // NUL-terminated copy (library error string or broker text)
} herald_reply_info;

// MARK: - Field tables (queue arguments, message headers)

/// An owned, heap-allocated AMQP field table. Keys and string values are copied.
typedef struct herald_table herald_table;

herald_table *herald_table_create(size_t capacity);
int herald_table_add_string(herald_table *table, const char *key, const char *value);
int herald_table_add_int(herald_table *table, const char *key, int64_t value);
int herald_table_add_bool(herald_table *table, const char *key, int value);
void herald_table_destroy(herald_table *table);

#define HERALD_FIELD_UNSUPPORTED 0
#define HERALD_FIELD_STRING 1
#define HERALD_FIELD_INT 2
#define HERALD_FIELD_BOOL 3

/// Reads entry `index` of a received table. Integer kinds of any width become HERALD_FIELD_INT.
/// Returns HERALD_FIELD_* ; nested tables, arrays, floats, decimals, timestamps are UNSUPPORTED.
int herald_table_entry(const amqp_table_t *table, int index, amqp_bytes_t *key,
                       amqp_bytes_t *string_value, int64_t *int_value, int *bool_value);

// MARK: - Connection setup and RPCs (all on the connection's own thread)

/// Creates the TCP socket on `conn`, connects (bounded by `connect_timeout_ms`), and logs in with
/// SASL PLAIN, advertising `connection_name` as a client property. `heartbeat` seconds (0 = off).
herald_reply_info herald_connect(amqp_connection_state_t conn, const char *host, int port,
                                 int connect_timeout_ms, int rpc_timeout_ms, const char *vhost,
                                 int heartbeat, const char *user, const char *password,
                                 const char *connection_name);

herald_reply_info herald_channel_open(amqp_connection_state_t conn, uint16_t channel);
herald_reply_info herald_confirm_select(amqp_connection_state_t conn, uint16_t channel);
herald_reply_info herald_exchange_declare(amqp_connection_state_t conn, uint16_t channel,
                                          const char *name, const char *type, int durable);
/// `arguments` may be NULL.
herald_reply_info herald_queue_declare(amqp_connection_state_t conn, uint16_t channel,
                                       const char *name, int durable,
                                       const herald_table *arguments);
/// Passive queue.declare: the queue's ready messages and consumers, without creating it (a
/// missing queue is a channel close with 404).
herald_reply_info herald_queue_inspect(amqp_connection_state_t conn, uint16_t channel,
                                       const char *name, uint32_t *message_count,
                                       uint32_t *consumer_count);
herald_reply_info herald_queue_bind(amqp_connection_state_t conn, uint16_t channel,
                                    const char *queue, const char *exchange,
                                    const char *routing_key);
herald_reply_info herald_basic_qos(amqp_connection_state_t conn, uint16_t channel,
                                   uint16_t prefetch_count);
/// Starts a manual-ack consumer. The broker-generated consumer tag is copied into `tag_out`.
herald_reply_info herald_basic_consume(amqp_connection_state_t conn, uint16_t channel,
                                       const char *queue, char *tag_out, size_t tag_capacity);
herald_reply_info herald_basic_cancel(amqp_connection_state_t conn, uint16_t channel,
                                      const char *consumer_tag);

/// Publishes one message (no mandatory flag). NULL content_type / message_id / headers = absent.
/// Returns an AMQP_STATUS_* code.
int herald_basic_publish(amqp_connection_state_t conn, uint16_t channel, const char *exchange,
                         const char *routing_key, int persistent, const char *content_type,
                         const char *message_id, const herald_table *headers,
                         const void *body, size_t body_length);

/// Best effort clean close: channel.close (if channel > 0), connection.close. Never blocks longer
/// than the RPC timeout. Does not destroy `conn`.
void herald_close(amqp_connection_state_t conn, uint16_t channel);

// MARK: - Incoming frames

#define HERALD_EVENT_TIMEOUT 0         // nothing arrived before the timeout
#define HERALD_EVENT_ACK 1             // basic.ack (publisher confirm)
#define HERALD_EVENT_NACK 2            // basic.nack (publisher confirm)
#define HERALD_EVENT_DELIVER 3         // basic.deliver; read its content with herald_read_content
#define HERALD_EVENT_RETURN 4          // basic.return; content follows (read and drop it)
#define HERALD_EVENT_CHANNEL_CLOSE 5   // channel.close (close-ok already sent)
#define HERALD_EVENT_CONNECTION_CLOSE 6  // connection.close (close-ok already sent)
#define HERALD_EVENT_CONSUMER_CANCELLED 7  // broker-side basic.cancel (e.g. queue deleted)
#define HERALD_EVENT_OTHER 8           // anything else (ignored)

typedef struct herald_event {
  int kind;  // HERALD_EVENT_*
  uint16_t channel;
  uint64_t delivery_tag;
  int multiple;
  int redelivered;
  uint16_t reply_code;
  amqp_bytes_t reply_text;   // valid until amqp_maybe_release_buffers
  amqp_bytes_t exchange;     // valid until amqp_maybe_release_buffers
  amqp_bytes_t routing_key;  // valid until amqp_maybe_release_buffers
} herald_event;

/// Reads at most one frame, waiting up to `timeout_us` microseconds (0 = don't wait). Sends and
/// checks heartbeats as a side effect. Returns AMQP_STATUS_OK (an event, possibly TIMEOUT kind)
/// or a negative AMQP_STATUS_* for a dead connection.
int herald_next_event(amqp_connection_state_t conn, long timeout_us, herald_event *event);

typedef struct herald_content {
  amqp_message_t message;  // owned; free with herald_content_destroy
  amqp_bytes_t body;
  int has_message_id;
  amqp_bytes_t message_id;
  const amqp_table_t *headers;  // NULL when absent
} herald_content;

/// Reads the header and body frames that follow a basic.deliver / basic.return on `channel`.
herald_reply_info herald_read_content(amqp_connection_state_t conn, uint16_t channel,
                                      herald_content *content);
void herald_content_destroy(herald_content *content);

// MARK: - Wake-up pipe and waiting

/// Creates a non-blocking, close-on-exec pipe. Returns 0 on success.
int herald_wake_pipe(int *read_fd, int *write_fd);
/// Writes one byte (safe from any thread; a full pipe is fine: a wake-up is already pending).
void herald_wake_signal(int write_fd);
/// Empties the pipe.
void herald_wake_drain(int read_fd);
void herald_close_fd(int fd);

#define HERALD_READY_SOCKET 1
#define HERALD_READY_WAKE 2

/// poll()s `socket_fd` (ignored if < 0) and `wake_fd` for readability. Returns a HERALD_READY_*
/// bitmask, 0 on timeout or EINTR, -1 on error.
int herald_wait_readable(int socket_fd, int wake_fd, int timeout_ms);

#endif

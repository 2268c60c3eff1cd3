#include "CRabbitMQShim.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// MARK: - Reply helpers

static void herald_copy_text(char *dst, size_t cap, const void *src, size_t len) {
  if (cap == 0) return;
  if (len >= cap) len = cap - 1;
  if (len > 0 && src != NULL) memcpy(dst, src, len);
  dst[len] = '\0';
}

static herald_reply_info herald_library_error(int status) {
  herald_reply_info info;
  memset(&info, 0, sizeof(info));
  info.kind = HERALD_REPLY_LIBRARY_ERROR;
  info.library_error = status;
  const char *text = amqp_error_string2(status);
  herald_copy_text(info.reply_text, sizeof(info.reply_text), text, text ? strlen(text) : 0);
  return info;
}

// Flattens an amqp_rpc_reply_t. For broker-initiated closes it also answers with the matching
// close-ok, as the protocol requires.
static herald_reply_info herald_classify_reply(amqp_connection_state_t conn, uint16_t channel,
                                               amqp_rpc_reply_t reply) {
  herald_reply_info info;
  memset(&info, 0, sizeof(info));
  switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      info.kind = HERALD_REPLY_OK;
      return info;
    case AMQP_RESPONSE_NONE:
      info = herald_library_error(AMQP_STATUS_UNEXPECTED_STATE);
      herald_copy_text(info.reply_text, sizeof(info.reply_text), "missing RPC reply", 17);
      return info;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return herald_library_error(reply.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      switch (reply.reply.id) {
        case AMQP_CHANNEL_CLOSE_METHOD: {
          amqp_channel_close_t *m = (amqp_channel_close_t *)reply.reply.decoded;
          info.kind = HERALD_REPLY_CHANNEL_CLOSE;
          info.reply_code = m->reply_code;
          herald_copy_text(info.reply_text, sizeof(info.reply_text), m->reply_text.bytes,
                           m->reply_text.len);
          amqp_channel_close_ok_t ok;
          memset(&ok, 0, sizeof(ok));
          amqp_send_method(conn, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
          return info;
        }
        case AMQP_CONNECTION_CLOSE_METHOD: {
          amqp_connection_close_t *m = (amqp_connection_close_t *)reply.reply.decoded;
          info.kind = HERALD_REPLY_CONNECTION_CLOSE;
          info.reply_code = m->reply_code;
          herald_copy_text(info.reply_text, sizeof(info.reply_text), m->reply_text.bytes,
                           m->reply_text.len);
          amqp_connection_close_ok_t ok;
          memset(&ok, 0, sizeof(ok));
          amqp_send_method(conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
          return info;
        }
        default:
          info.kind = HERALD_REPLY_OTHER;
          snprintf(info.reply_text, sizeof(info.reply_text), "unexpected method 0x%08x",
                   (unsigned)reply.reply.id);
          return info;
      }
  }
  return herald_library_error(AMQP_STATUS_UNEXPECTED_STATE);
}

// MARK: - Tables

struct herald_table {
  amqp_table_t table;
  size_t capacity;
};

herald_table *herald_table_create(size_t capacity) {
  herald_table *t = calloc(1, sizeof(herald_table));
  if (t == NULL) return NULL;
  if (capacity > 0) {
    t->table.entries = calloc(capacity, sizeof(amqp_table_entry_t));
    if (t->table.entries == NULL) {
      free(t);
      return NULL;
    }
  }
  t->capacity = capacity;
  t->table.num_entries = 0;
  return t;
}

static amqp_table_entry_t *herald_table_next(herald_table *t, const char *key) {
  if (t == NULL || key == NULL || (size_t)t->table.num_entries >= t->capacity) return NULL;
  char *key_copy = strdup(key);
  if (key_copy == NULL) return NULL;
  amqp_table_entry_t *e = &t->table.entries[t->table.num_entries];
  e->key.bytes = key_copy;
  e->key.len = strlen(key_copy);
  return e;
}

int herald_table_add_string(herald_table *t, const char *key, const char *value) {
  amqp_table_entry_t *e = herald_table_next(t, key);
  if (e == NULL) return -1;
  char *copy = strdup(value ? value : "");
  if (copy == NULL) {
    free(e->key.bytes);
    return -1;
  }
  e->value.kind = AMQP_FIELD_KIND_UTF8;
  e->value.value.bytes.bytes = copy;
  e->value.value.bytes.len = strlen(copy);
  t->table.num_entries++;
  return 0;
}

int herald_table_add_int(herald_table *t, const char *key, int64_t value) {
  amqp_table_entry_t *e = herald_table_next(t, key);
  if (e == NULL) return -1;
  e->value.kind = AMQP_FIELD_KIND_I64;
  e->value.value.i64 = value;
  t->table.num_entries++;
  return 0;
}

int herald_table_add_bool(herald_table *t, const char *key, int value) {
  amqp_table_entry_t *e = herald_table_next(t, key);
  if (e == NULL) return -1;
  e->value.kind = AMQP_FIELD_KIND_BOOLEAN;
  e->value.value.boolean = value ? 1 : 0;
  t->table.num_entries++;
  return 0;
}

void herald_table_destroy(herald_table *t) {
  if (t == NULL) return;
  for (int i = 0; i < t->table.num_entries; i++) {
    amqp_table_entry_t *e = &t->table.entries[i];
    free(e->key.bytes);
    if (e->value.kind == AMQP_FIELD_KIND_UTF8) free(e->value.value.bytes.bytes);
  }
  free(t->table.entries);
  free(t);
}

int herald_table_entry(const amqp_table_t *table, int index, amqp_bytes_t *key,
                       amqp_bytes_t *string_value, int64_t *int_value, int *bool_value) {
  if (table == NULL || index < 0 || index >= table->num_entries) return HERALD_FIELD_UNSUPPORTED;
  const amqp_table_entry_t *e = &table->entries[index];
  *key = e->key;
  const amqp_field_value_t *v = &e->value;
  switch (v->kind) {
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
      *string_value = v->value.bytes;
      return HERALD_FIELD_STRING;
    case AMQP_FIELD_KIND_BOOLEAN:
      *bool_value = v->value.boolean ? 1 : 0;
      return HERALD_FIELD_BOOL;
    case AMQP_FIELD_KIND_I8: *int_value = v->value.i8; return HERALD_FIELD_INT;
    case AMQP_FIELD_KIND_U8: *int_value = v->value.u8; return HERALD_FIELD_INT;
    case AMQP_FIELD_KIND_I16: *int_value = v->value.i16; return HERALD_FIELD_INT;
    case AMQP_FIELD_KIND_U16: *int_value = v->value.u16; return HERALD_FIELD_INT;
    case AMQP_FIELD_KIND_I32: *int_value = v->value.i32; return HERALD_FIELD_INT;
    case AMQP_FIELD_KIND_U32: *int_value = v->value.u32; return HERALD_FIELD_INT;
    case AMQP_FIELD_KIND_I64: *int_value = v->value.i64; return HERALD_FIELD_INT;
    case AMQP_FIELD_KIND_U64:
      if (v->value.u64 > (uint64_t)INT64_MAX) return HERALD_FIELD_UNSUPPORTED;
      *int_value = (int64_t)v->value.u64;
      return HERALD_FIELD_INT;
    default:
      return HERALD_FIELD_UNSUPPORTED;
  }
}

// MARK: - Connection setup and RPCs

static struct timeval herald_ms_to_tv(int ms) {
  struct timeval tv;
  tv.tv_sec = ms / 1000;
  tv.tv_usec = (ms % 1000) * 1000;
  return tv;
}

herald_reply_info herald_connect(amqp_connection_state_t conn, const char *host, int port,
                                 int connect_timeout_ms, int rpc_timeout_ms, const char *vhost,
                                 int heartbeat, const char *user, const char *password,
                                 const char *connection_name) {
  herald_reply_info info;
  amqp_socket_t *socket = amqp_tcp_socket_new(conn);
  if (socket == NULL) {
    info = herald_library_error(AMQP_STATUS_NO_MEMORY);
    info.stage = HERALD_STAGE_SOCKET;
    return info;
  }
  struct timeval connect_tv = herald_ms_to_tv(connect_timeout_ms);
  int status = amqp_socket_open_noblock(socket, host, port, &connect_tv);
  if (status != AMQP_STATUS_OK) {
    info = herald_library_error(status);
    info.stage = HERALD_STAGE_SOCKET;
    return info;
  }
  amqp_set_handshake_timeout(conn, &connect_tv);
  struct timeval rpc_tv = herald_ms_to_tv(rpc_timeout_ms);
  amqp_set_rpc_timeout(conn, &rpc_tv);

  amqp_table_entry_t entries[2];
  memset(entries, 0, sizeof(entries));
  entries[0].key = amqp_cstring_bytes("connection_name");
  entries[0].value.kind = AMQP_FIELD_KIND_UTF8;
  entries[0].value.value.bytes = amqp_cstring_bytes(connection_name ? connection_name : "herald");
  entries[1].key = amqp_cstring_bytes("product");
  entries[1].value.kind = AMQP_FIELD_KIND_UTF8;
  entries[1].value.value.bytes = amqp_cstring_bytes("Herald");
  amqp_table_t properties;
  properties.num_entries = 2;
  properties.entries = entries;

  amqp_rpc_reply_t reply =
      amqp_login_with_properties(conn, vhost, 0, AMQP_DEFAULT_FRAME_SIZE, heartbeat, &properties,
                                 AMQP_SASL_METHOD_PLAIN, user, password);
  info = herald_classify_reply(conn, 0, reply);
  info.stage = HERALD_STAGE_LOGIN;
  return info;
}

herald_reply_info herald_channel_open(amqp_connection_state_t conn, uint16_t channel) {
  amqp_channel_open(conn, channel);
  return herald_classify_reply(conn, channel, amqp_get_rpc_reply(conn));
}

herald_reply_info herald_confirm_select(amqp_connection_state_t conn, uint16_t channel) {
  amqp_confirm_select(conn, channel);
  return herald_classify_reply(conn, channel, amqp_get_rpc_reply(conn));
}

herald_reply_info herald_exchange_declare(amqp_connection_state_t conn, uint16_t channel,
                                          const char *name, const char *type, int durable) {
  amqp_exchange_declare(conn, channel, amqp_cstring_bytes(name), amqp_cstring_bytes(type), 0,
                        durable ? 1 : 0, 0, 0, amqp_empty_table);
  return herald_classify_reply(conn, channel, amqp_get_rpc_reply(conn));
}

herald_reply_info herald_queue_declare(amqp_connection_state_t conn, uint16_t channel,
                                       const char *name, int durable,
                                       const herald_table *arguments) {
  amqp_queue_declare(conn, channel, amqp_cstring_bytes(name), 0, durable ? 1 : 0, 0, 0,
                     arguments ? arguments->table : amqp_empty_table);
  return herald_classify_reply(conn, channel, amqp_get_rpc_reply(conn));
}

herald_reply_info herald_queue_inspect(amqp_connection_state_t conn, uint16_t channel,
                                       const char *name, uint32_t *message_count,
                                       uint32_t *consumer_count) {
  amqp_queue_declare_ok_t *ok = amqp_queue_declare(conn, channel, amqp_cstring_bytes(name), 1, 0, 0,
                                                   0, amqp_empty_table);
  herald_reply_info info = herald_classify_reply(conn, channel, amqp_get_rpc_reply(conn));
  *message_count = 0;
  *consumer_count = 0;
  if (info.kind == HERALD_REPLY_OK && ok != NULL) {
    *message_count = ok->message_count;
    *consumer_count = ok->consumer_count;
  }
  return info;
}

herald_reply_info herald_queue_bind(amqp_connection_state_t conn, uint16_t channel,
                                    const char *queue, const char *exchange,
                                    const char *routing_key) {
  amqp_queue_bind(conn, channel, amqp_cstring_bytes(queue), amqp_cstring_bytes(exchange),
                  amqp_cstring_bytes(routing_key), amqp_empty_table);
  return herald_classify_reply(conn, channel, amqp_get_rpc_reply(conn));
}

herald_reply_info herald_basic_qos(amqp_connection_state_t conn, uint16_t channel,
                                   uint16_t prefetch_count) {
  amqp_basic_qos(conn, channel, 0, prefetch_count, 0);
  return herald_classify_reply(conn, channel, amqp_get_rpc_reply(conn));
}

herald_reply_info herald_basic_consume(amqp_connection_state_t conn, uint16_t channel,
                                       const char *queue, char *tag_out, size_t tag_capacity) {
  amqp_basic_consume_ok_t *ok = amqp_basic_consume(conn, channel, amqp_cstring_bytes(queue),
                                                   amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
  herald_reply_info info = herald_classify_reply(conn, channel, amqp_get_rpc_reply(conn));
  if (info.kind == HERALD_REPLY_OK && ok != NULL) {
    herald_copy_text(tag_out, tag_capacity, ok->consumer_tag.bytes, ok->consumer_tag.len);
  } else if (tag_capacity > 0) {
    tag_out[0] = '\0';
  }
  return info;
}

herald_reply_info herald_basic_cancel(amqp_connection_state_t conn, uint16_t channel,
                                      const char *consumer_tag) {
  amqp_basic_cancel(conn, channel, amqp_cstring_bytes(consumer_tag));
  return herald_classify_reply(conn, channel, amqp_get_rpc_reply(conn));
}

int herald_basic_publish(amqp_connection_state_t conn, uint16_t channel, const char *exchange,
                         const char *routing_key, int persistent, const char *content_type,
                         const char *message_id, const herald_table *headers,
                         const void *body, size_t body_length) {
  amqp_basic_properties_t props;
  memset(&props, 0, sizeof(props));
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
  props.delivery_mode = persistent ? AMQP_DELIVERY_PERSISTENT : AMQP_DELIVERY_NONPERSISTENT;
  if (content_type != NULL) {
    props._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
    props.content_type = amqp_cstring_bytes(content_type);
  }
  if (message_id != NULL) {
    props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
    props.message_id = amqp_cstring_bytes(message_id);
  }
  if (headers != NULL && headers->table.num_entries > 0) {
    props._flags |= AMQP_BASIC_HEADERS_FLAG;
    props.headers = headers->table;
  }
  amqp_bytes_t payload;
  payload.len = body_length;
  payload.bytes = (void *)body;
  return amqp_basic_publish(conn, channel, amqp_cstring_bytes(exchange),
                            amqp_cstring_bytes(routing_key), 0, 0, &props, payload);
}

void herald_close(amqp_connection_state_t conn, uint16_t channel) {
  if (channel > 0) {
    amqp_rpc_reply_t r = amqp_channel_close(conn, channel, AMQP_REPLY_SUCCESS);
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) return;  // socket is gone
  }
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
}

// MARK: - Incoming frames

int herald_next_event(amqp_connection_state_t conn, long timeout_us, herald_event *event) {
  memset(event, 0, sizeof(*event));
  // A zero timeval means "immediate" to rabbitmq-c, which then never reports a missed broker
  // heartbeat. One microsecond keeps the call non-blocking but lets the heartbeat deadline win.
  if (timeout_us < 1) timeout_us = 1;
  struct timeval tv;
  tv.tv_sec = timeout_us / 1000000;
  tv.tv_usec = timeout_us % 1000000;

  amqp_frame_t frame;
  int status = amqp_simple_wait_frame_noblock(conn, &frame, &tv);
  if (status == AMQP_STATUS_TIMEOUT) {
    event->kind = HERALD_EVENT_TIMEOUT;
    return AMQP_STATUS_OK;
  }
  if (status != AMQP_STATUS_OK) return status;

  event->channel = frame.channel;
  if (frame.frame_type != AMQP_FRAME_METHOD) {
    event->kind = HERALD_EVENT_OTHER;
    return AMQP_STATUS_OK;
  }
  switch (frame.payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
      amqp_basic_ack_t *m = (amqp_basic_ack_t *)frame.payload.method.decoded;
      event->kind = HERALD_EVENT_ACK;
      event->delivery_tag = m->delivery_tag;
      event->multiple = m->multiple ? 1 : 0;
      break;
    }
    case AMQP_BASIC_NACK_METHOD: {
      amqp_basic_nack_t *m = (amqp_basic_nack_t *)frame.payload.method.decoded;
      event->kind = HERALD_EVENT_NACK;
      event->delivery_tag = m->delivery_tag;
      event->multiple = m->multiple ? 1 : 0;
      break;
    }
    case AMQP_BASIC_DELIVER_METHOD: {
      amqp_basic_deliver_t *m = (amqp_basic_deliver_t *)frame.payload.method.decoded;
      event->kind = HERALD_EVENT_DELIVER;
      event->delivery_tag = m->delivery_tag;
      event->redelivered = m->redelivered ? 1 : 0;
      event->exchange = m->exchange;
      event->routing_key = m->routing_key;
      break;
    }
    case AMQP_BASIC_RETURN_METHOD: {
      amqp_basic_return_t *m = (amqp_basic_return_t *)frame.payload.method.decoded;
      event->kind = HERALD_EVENT_RETURN;
      event->reply_code = m->reply_code;
      event->reply_text = m->reply_text;
      event->exchange = m->exchange;
      event->routing_key = m->routing_key;
      break;
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
      amqp_channel_close_t *m = (amqp_channel_close_t *)frame.payload.method.decoded;
      event->kind = HERALD_EVENT_CHANNEL_CLOSE;
      event->reply_code = m->reply_code;
      event->reply_text = m->reply_text;
      amqp_channel_close_ok_t ok;
      memset(&ok, 0, sizeof(ok));
      amqp_send_method(conn, frame.channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
      break;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
      amqp_connection_close_t *m = (amqp_connection_close_t *)frame.payload.method.decoded;
      event->kind = HERALD_EVENT_CONNECTION_CLOSE;
      event->reply_code = m->reply_code;
      event->reply_text = m->reply_text;
      amqp_connection_close_ok_t ok;
      memset(&ok, 0, sizeof(ok));
      amqp_send_method(conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
      break;
    }
    case AMQP_BASIC_CANCEL_METHOD:
      event->kind = HERALD_EVENT_CONSUMER_CANCELLED;
      break;
    default:
      event->kind = HERALD_EVENT_OTHER;
      break;
  }
  return AMQP_STATUS_OK;
}

herald_reply_info herald_read_content(amqp_connection_state_t conn, uint16_t channel,
                                      herald_content *content) {
  memset(content, 0, sizeof(*content));
  amqp_rpc_reply_t reply = amqp_read_message(conn, channel, &content->message, 0);
  // On failure amqp_read_message has already released what it allocated.
  herald_reply_info info = herald_classify_reply(conn, channel, reply);
  if (info.kind != HERALD_REPLY_OK) {
    memset(content, 0, sizeof(*content));
    return info;
  }
  content->body = content->message.body;
  const amqp_basic_properties_t *p = &content->message.properties;
  if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) {
    content->has_message_id = 1;
    content->message_id = p->message_id;
  }
  content->headers = (p->_flags & AMQP_BASIC_HEADERS_FLAG) ? &p->headers : NULL;
  return info;
}

void herald_content_destroy(herald_content *content) {
  amqp_destroy_message(&content->message);
  memset(content, 0, sizeof(*content));
}

// MARK: - Wake-up pipe

int herald_wake_pipe(int *read_fd, int *write_fd) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  for (int i = 0; i < 2; i++) {
    int fl = fcntl(fds[i], F_GETFL);
    fcntl(fds[i], F_SETFL, fl | O_NONBLOCK);
    fcntl(fds[i], F_SETFD, FD_CLOEXEC);
  }
  *read_fd = fds[0];
  *write_fd = fds[1];
  return 0;
}

void herald_wake_signal(int write_fd) {
  const char byte = 1;
  ssize_t n;
  do {
    n = write(write_fd, &byte, 1);
  } while (n < 0 && errno == EINTR);
  // EAGAIN: the pipe is full, so a wake-up is pending anyway.
}

void herald_wake_drain(int read_fd) {
  char buffer[64];
  for (;;) {
    ssize_t n = read(read_fd, buffer, sizeof(buffer));
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    break;
  }
}

void herald_close_fd(int fd) {
  if (fd >= 0) close(fd);
}

int herald_wait_readable(int socket_fd, int wake_fd, int timeout_ms) {
  struct pollfd fds[2];
  nfds_t count = 0;
  int wake_index = -1, socket_index = -1;
  if (wake_fd >= 0) {
    fds[count].fd = wake_fd;
    fds[count].events = POLLIN;
    fds[count].revents = 0;
    wake_index = (int)count++;
  }
  if (socket_fd >= 0) {
    fds[count].fd = socket_fd;
    fds[count].events = POLLIN;
    fds[count].revents = 0;
    socket_index = (int)count++;
  }
  int rc = poll(fds, count, timeout_ms);
  if (rc < 0) return errno == EINTR ? 0 : -1;
  int result = 0;
  // Errors / hang-ups on the socket count as "readable": the next read reports them.
  if (socket_index >= 0 && fds[socket_index].revents != 0) result |= HERALD_READY_SOCKET;
  if (wake_index >= 0 && fds[wake_index].revents != 0) result |= HERALD_READY_WAKE;
  return result;
}

// durable-baseline: the durable work one notification needs and nothing else, batched as well as
// it can be: the ceiling scripts/bench compares Herald with, measured in the same run on the same
// servers.
//
// Per notification: the request document INSERTed into PostgreSQL (committed with fsync and
// synchronous_commit on), a persistent message published to RabbitMQ and confirmed, the message
// consumed, its status UPDATEd and an attempt row INSERTed (one committed transaction), the
// message acked. Producers (default 4) take BATCH notifications per transaction and per confirm wait;
// consumers (default 4) take BATCH messages per transaction and ack them with one `multiple` ack. Producers
// and consumers run at once on their own connections (threads), so the stages overlap the way
// Herald's gateway, relay and worker do.
//
//   durable-baseline --pg CONNINFO --amqp-host H --amqp-port P [-n COUNT] [--batch B]
//                    [--producers N] [--consumers N] [--document FILE]
//
// Uses its own tables (bl_notifications, bl_attempts) and queue (herald.bench.baseline), emptied
// first. Prints one JSON object: count, seconds, notifications per second, own CPU seconds.
//
// Build: cc -O2 -pthread -I$(pg_config --includedir) durable-baseline.c -lpq -lrabbitmq
#define _GNU_SOURCE
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>

#define QUEUE "herald.bench.baseline"
#define MAX_BATCH 1000

static const char *pg_conninfo, *amqp_host = "127.0.0.1";
static int amqp_port = 5672, batch = 100, producers = 4, consumers = 4;
static long total = 20000;
static char *document;
static atomic_long next_id, consumed;

static void die(const char *what, const char *detail) {
    fprintf(stderr, "durable-baseline: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static PGconn *pg_connect(void) {
    PGconn *pg = PQconnectdb(pg_conninfo);
    if (PQstatus(pg) != CONNECTION_OK) die("PostgreSQL connection failed", PQerrorMessage(pg));
    return pg;
}

static void pg_exec(PGconn *pg, const char *sql) {
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) die(sql, PQerrorMessage(pg));
    PQclear(r);
}

static void amqp_check(amqp_rpc_reply_t reply, const char *what) {
    if (reply.reply_type != AMQP_RESPONSE_NORMAL) die(what, "broker refused or connection lost");
}

static amqp_connection_state_t amqp_open(void) {
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *socket = amqp_tcp_socket_new(conn);
    struct timeval timeout = {10, 0};
    if (!socket || amqp_socket_open_noblock(socket, amqp_host, amqp_port, &timeout) != AMQP_STATUS_OK) die("AMQP connect failed", NULL);
    amqp_check(amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest"), "AMQP login");
    amqp_channel_open(conn, 1);
    amqp_check(amqp_get_rpc_reply(conn), "channel.open");
    return conn;
}

// Builds "{$1,$2,...}" style array literals without quoting problems: ids are numbers, documents
// go through a text[] literal with every element double-quoted and escaped.
static char *append(char *buffer, size_t *length, size_t *capacity, const char *text, size_t n) {
    if (*length + n + 1 > *capacity) {
        *capacity = (*length + n + 1) * 2;
        buffer = realloc(buffer, *capacity);
        if (!buffer) die("out of memory", NULL);
    }
    memcpy(buffer + *length, text, n);
    *length += n;
    buffer[*length] = 0;
    return buffer;
}

static char *array_of_documents(long first, int count, size_t *out_length) {
    size_t length = 0, capacity = 0;
    char *buffer = append(NULL, &length, &capacity, "{", 1);
    for (int i = 0; i < count; i++) {
        if (i) buffer = append(buffer, &length, &capacity, ",", 1);
        buffer = append(buffer, &length, &capacity, "\"", 1);
        char idtext[64];
        int n = snprintf(idtext, sizeof idtext, "{\\\"n\\\":%ld,", first + i);
        buffer = append(buffer, &length, &capacity, idtext, (size_t)n);
        for (const char *p = document + 1; *p; p++) {  // the document without its opening brace
            if (*p == '"' || *p == '\\') buffer = append(buffer, &length, &capacity, "\\", 1);
            buffer = append(buffer, &length, &capacity, p, 1);
        }
        buffer = append(buffer, &length, &capacity, "\"", 1);
    }
    buffer = append(buffer, &length, &capacity, "}", 1);
    *out_length = length;
    return buffer;
}

static char *array_of_ids(const long *ids, int count) {
    size_t length = 0, capacity = 0;
    char *buffer = append(NULL, &length, &capacity, "{", 1);
    for (int i = 0; i < count; i++) {
        char text[32];
        int n = snprintf(text, sizeof text, "%s%ld", i ? "," : "", ids[i]);
        buffer = append(buffer, &length, &capacity, text, (size_t)n);
    }
    return append(buffer, &length, &capacity, "}", 1);
}

static void *producer(void *unused) {
    (void)unused;
    PGconn *pg = pg_connect();
    amqp_connection_state_t amqp = amqp_open();
    amqp_confirm_select(amqp, 1);
    amqp_check(amqp_get_rpc_reply(amqp), "confirm.select");
    uint64_t published = 0;
    amqp_basic_properties_t properties = {0};
    properties._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    properties.delivery_mode = 2;
    properties.content_type = amqp_cstring_bytes("application/json");
    for (;;) {
        long first = atomic_fetch_add(&next_id, batch);
        if (first >= total) break;
        int count = (int)(total - first < batch ? total - first : batch);
        // 1. The documents, one statement, one durable commit.
        size_t length;
        char *documents = array_of_documents(first, count, &length);
        char firsttext[32], counttext[32];
        snprintf(firsttext, sizeof firsttext, "%ld", first);
        snprintf(counttext, sizeof counttext, "%d", count);
        const char *values[3] = {firsttext, counttext, documents};
        PGresult *r = PQexecParams(pg,
                                   "INSERT INTO bl_notifications (id, status, request) "
                                   "SELECT $1::bigint + n - 1, 'queued', d::jsonb FROM unnest($3::text[]) WITH ORDINALITY AS t(d, n) "
                                   "WHERE n <= $2::int",
                                   3, NULL, values, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) die("insert", PQerrorMessage(pg));
        PQclear(r);
        // 2. One persistent message per notification (the document and its id), then every confirm.
        const char *body = document;
        for (int i = 0; i < count; i++) {
            char message[8192];
            int n = snprintf(message, sizeof message, "{\"n\":%ld,%s", first + i, body + 1);
            amqp_bytes_t bytes = {.len = (size_t)n, .bytes = message};
            if (amqp_basic_publish(amqp, 1, amqp_empty_bytes, amqp_cstring_bytes(QUEUE), 0, 0, &properties, bytes) != AMQP_STATUS_OK)
                die("basic.publish", NULL);
            published++;
        }
        uint64_t confirmed = 0;
        while (confirmed < published) {
            amqp_frame_t frame;
            if (amqp_simple_wait_frame(amqp, &frame) != AMQP_STATUS_OK) die("waiting for confirms", NULL);
            if (frame.frame_type != AMQP_FRAME_METHOD) continue;
            if (frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
                amqp_basic_ack_t *ack = frame.payload.method.decoded;
                confirmed = ack->delivery_tag;  // multiple or single: confirms arrive in order
            } else if (frame.payload.method.id == AMQP_BASIC_NACK_METHOD) {
                die("the broker nacked a message", NULL);
            }
        }
        free(documents);
    }
    amqp_channel_close(amqp, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(amqp, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(amqp);
    PQfinish(pg);
    return NULL;
}

static long parse_id(amqp_bytes_t body) {
    // Messages start with {"n":ID,
    const char *text = body.bytes;
    if (body.len < 6) die("unexpected message", NULL);
    return strtol(text + 5, NULL, 10);
}

static void *consumer(void *unused) {
    (void)unused;
    PGconn *pg = pg_connect();
    amqp_connection_state_t amqp = amqp_open();
    amqp_basic_qos(amqp, 1, 0, (uint16_t)(batch * 2), 0);
    amqp_check(amqp_get_rpc_reply(amqp), "basic.qos");
    amqp_basic_consume(amqp, 1, amqp_cstring_bytes(QUEUE), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    amqp_check(amqp_get_rpc_reply(amqp), "basic.consume");
    long ids[MAX_BATCH];
    uint64_t last_tag = 0;
    int held = 0;
    while (atomic_load(&consumed) < total) {
        amqp_envelope_t envelope;
        amqp_maybe_release_buffers(amqp);
        struct timeval wait = {0, held ? 2000 : 100000};  // flush a partial batch after 2 ms of quiet
        amqp_rpc_reply_t reply = amqp_consume_message(amqp, &envelope, &wait, 0);
        int got = reply.reply_type == AMQP_RESPONSE_NORMAL;
        if (!got && !(reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && reply.library_error == AMQP_STATUS_TIMEOUT))
            die("basic.consume", "connection lost");
        if (got) {
            ids[held++] = parse_id(envelope.message.body);
            last_tag = envelope.delivery_tag;
            amqp_destroy_envelope(&envelope);
        }
        if (held == batch || (!got && held > 0)) {
            // 3. Status and attempt in one durable transaction, then one ack for the whole batch.
            char *array = array_of_ids(ids, held);
            const char *values[1] = {array};
            PGresult *r = PQexecParams(pg,
                                       "WITH u AS (UPDATE bl_notifications SET status = 'sent', updated_at = now() "
                                       "WHERE id = ANY($1::bigint[]) RETURNING id) "
                                       "INSERT INTO bl_attempts (notification_id, outcome, finished_at) SELECT id, 'success', now() FROM u",
                                       1, NULL, values, NULL, NULL, 0);
            if (PQresultStatus(r) != PGRES_COMMAND_OK) die("settle", PQerrorMessage(pg));
            PQclear(r);
            free(array);
            if (amqp_basic_ack(amqp, 1, last_tag, 1) != AMQP_STATUS_OK) die("basic.ack", NULL);
            atomic_fetch_add(&consumed, held);
            held = 0;
        }
    }
    amqp_channel_close(amqp, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(amqp, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(amqp);
    PQfinish(pg);
    return NULL;
}

int main(int argc, char **argv) {
    const char *document_file = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *arg = argv[i], *value = argv[i + 1];
        if (!strcmp(arg, "--pg")) pg_conninfo = value;
        else if (!strcmp(arg, "--amqp-host")) amqp_host = value;
        else if (!strcmp(arg, "--amqp-port")) amqp_port = atoi(value);
        else if (!strcmp(arg, "-n")) total = atol(value);
        else if (!strcmp(arg, "--batch")) batch = atoi(value);
        else if (!strcmp(arg, "--producers")) producers = atoi(value);
        else if (!strcmp(arg, "--consumers")) consumers = atoi(value);
        else if (!strcmp(arg, "--document")) document_file = value;
        else die("unknown argument", arg);
    }
    if (!pg_conninfo || total <= 0 || batch < 1 || batch > MAX_BATCH || producers < 1 || producers > 16 || consumers < 1 || consumers > 16)
        die("usage: durable-baseline --pg CONNINFO [--amqp-host H] [--amqp-port P] [-n N] [--batch 1-1000] [--producers N] [--consumers N] "
            "[--document FILE]",
            NULL);
    if (document_file) {
        FILE *f = fopen(document_file, "rb");
        if (!f) die("cannot open", document_file);
        document = calloc(1, 8192);
        size_t n = fread(document, 1, 8000, f);
        fclose(f);
        while (n > 0 && (document[n - 1] == '\n' || document[n - 1] == ' ')) document[--n] = 0;
    } else {
        document = "{\"channel\":\"webhook\",\"to\":{\"webhook_url\":\"http://127.0.0.1:9099/hooks/bench\"},"
                   "\"message\":{\"subject\":\"Bench\",\"text\":\"Hello from scripts/bench\"}}";
    }
    if (document[0] != '{') die("the document must be a JSON object", NULL);

    PGconn *pg = pg_connect();
    pg_exec(pg, "CREATE TABLE IF NOT EXISTS bl_notifications (id bigint PRIMARY KEY, status text NOT NULL, request jsonb NOT NULL, "
                "created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now())");
    pg_exec(pg, "CREATE TABLE IF NOT EXISTS bl_attempts (id bigserial PRIMARY KEY, notification_id bigint NOT NULL, outcome text NOT NULL, "
                "finished_at timestamptz NOT NULL)");
    pg_exec(pg, "TRUNCATE bl_notifications, bl_attempts");
    PGresult *r = PQexec(pg, "SHOW synchronous_commit");
    char sync[16] = "?";
    if (PQresultStatus(r) == PGRES_TUPLES_OK) snprintf(sync, sizeof sync, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    r = PQexec(pg, "SHOW fsync");
    char fsync[16] = "?";
    if (PQresultStatus(r) == PGRES_TUPLES_OK) snprintf(fsync, sizeof fsync, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    amqp_connection_state_t amqp = amqp_open();
    amqp_queue_declare(amqp, 1, amqp_cstring_bytes(QUEUE), 0, 1, 0, 0, amqp_empty_table);
    amqp_check(amqp_get_rpc_reply(amqp), "queue.declare");
    amqp_queue_purge(amqp, 1, amqp_cstring_bytes(QUEUE));
    amqp_check(amqp_get_rpc_reply(amqp), "queue.purge");

    double start = now_s();
    pthread_t threads[32];
    int count = 0;
    for (int i = 0; i < consumers; i++) pthread_create(&threads[count++], NULL, consumer, NULL);
    for (int i = 0; i < producers; i++) pthread_create(&threads[count++], NULL, producer, NULL);
    for (int i = 0; i < count; i++) pthread_join(threads[i], NULL);
    double elapsed = now_s() - start;

    r = PQexec(pg, "SELECT (SELECT count(*) FROM bl_notifications WHERE status = 'sent'), (SELECT count(*) FROM bl_attempts)");
    long sent = 0, attempts = 0;
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        sent = atol(PQgetvalue(r, 0, 0));
        attempts = atol(PQgetvalue(r, 0, 1));
    }
    PQclear(r);
    pg_exec(pg, "TRUNCATE bl_notifications, bl_attempts");
    amqp_queue_delete(amqp, 1, amqp_cstring_bytes(QUEUE), 0, 0);
    amqp_connection_close(amqp, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(amqp);
    PQfinish(pg);
    if (sent != total || attempts != total) die("not every notification was settled exactly once", NULL);

    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    double cpu = (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6 + (double)usage.ru_stime.tv_sec +
                 (double)usage.ru_stime.tv_usec / 1e6;
    printf("{\"count\": %ld, \"batch\": %d, \"producers\": %d, \"consumers\": %d, \"elapsed_s\": %.3f, \"rate\": %.1f, \"cpu_s\": %.3f, "
           "\"fsync\": \"%s\", \"synchronous_commit\": \"%s\"}\n",
           total, batch, producers, consumers, elapsed, (double)total / elapsed, cpu, fsync, sync);
    return 0;
}

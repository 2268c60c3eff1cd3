// loadgen: an HTTP/1.1 load generator for scripts/bench, in two modes.
//
//   open loop   --rate R --duration S: request i is due at t0 + i/R whatever happened before;
//               its latency is measured from that due time, not from when a connection was free
//               to send it. A server that stalls therefore shows the stall in every request that
//               was due during it (no coordinated omission, as in wrk2). Requests wait for a free
//               connection in a FIFO; the wait counts.
//   closed loop --requests N --concurrency C: C connections each send their next request as soon
//               as the previous answer arrived (what hey does): for peak throughput.
//
// Keep-alive connections spread over one or more --target host:port (round robin), one request
// in flight per connection, epoll + timerfd on one thread. Every request has a timeout; the run
// ends by itself (all answered, or the duration plus the timeout passed). Prints one JSON object:
// counts by status, achieved rate, latency percentiles (µs) and the generator's own CPU time.
//
// Build: cc -O2 -o loadgen loadgen.c   (scripts/bench does it)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_TARGETS 8
#define MAX_HEADERS 16
#define READ_CHUNK 65536

typedef struct {
    struct sockaddr_in address;
    char host[64];
} Target;

typedef enum { C_CLOSED, C_CONNECTING, C_IDLE, C_BUSY } ConnState;

typedef struct {
    int fd;
    int target;
    ConnState state;
    size_t written;
    char *in;
    size_t in_len, in_cap;
    uint64_t due_ns;   // when the request in flight was due (open loop) or sent (closed loop)
    uint64_t sent_ns;  // when it was written
} Conn;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *message) {
    fprintf(stderr, "loadgen: %s\n", message);
    exit(2);
}

// --- run parameters and results ---------------------------------------------------------------
static Target targets[MAX_TARGETS];
static int target_count;
static char *request;  // the whole request, identical for every send
static size_t request_len;
static Conn *conns;
static int conn_count;
static int epfd, tfd;
static uint64_t timeout_ns = 10000000000ull;

static uint32_t *latency_us;        // from due (open loop) / send (closed loop) to answer
static uint32_t *service_us;        // from send to answer
static size_t completed, latency_cap;
static size_t status_counts[600];
static size_t errors_connect, errors_timeout, errors_closed, errors_parse;

// Pending requests (open loop): due times, FIFO ring.
static uint64_t *pending;
static size_t pending_head, pending_tail, pending_cap;

static void record(Conn *c, int status, uint64_t at) {
    if (status >= 0 && status < 600) status_counts[status]++;
    if (completed < latency_cap) {
        latency_us[completed] = (uint32_t)((at - c->due_ns) / 1000);
        service_us[completed] = (uint32_t)((at - c->sent_ns) / 1000);
    }
    completed++;
}

static void conn_close(Conn *c) {
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = C_CLOSED;
    c->in_len = 0;
}

static int conn_open(Conn *c) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = connect(fd, (struct sockaddr *)&targets[c->target].address, sizeof targets[c->target].address);
    if (rc < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->state = rc == 0 ? C_IDLE : C_CONNECTING;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

// Writes what is left of the request; 0 when all of it went out, 1 when the socket is full, -1 on error.
static int conn_write(Conn *c) {
    while (c->written < request_len) {
        ssize_t n = write(c->fd, request + c->written, request_len - c->written);
        if (n < 0) {
            if (errno == EAGAIN) return 1;
            if (errno == EINTR) continue;
            return -1;
        }
        c->written += (size_t)n;
    }
    return 0;
}

static void conn_send(Conn *c, uint64_t due, uint64_t at) {
    c->state = C_BUSY;
    c->written = 0;
    c->in_len = 0;
    c->due_ns = due;
    c->sent_ns = at;
    if (conn_write(c) < 0) {
        errors_closed++;
        conn_close(c);
    }
}

// Parses a complete response at the start of c->in; returns its length (0: incomplete, -1: bad).
// Sets *status and *close_after.
static long parse_response(Conn *c, int *status, int *close_after) {
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!end) return 0;
    size_t header_len = (size_t)(end - c->in) + 4;
    if (c->in_len < 12 || memcmp(c->in, "HTTP/1.", 7) != 0) return -1;
    *status = atoi(c->in + 9);
    *close_after = 0;
    long content_length = -1;
    for (char *line = memchr(c->in, '\n', header_len); line && line < end; line = memchr(line + 1, '\n', (size_t)(end - line))) {
        char *field = line + 1;
        if (strncasecmp(field, "content-length:", 15) == 0) content_length = strtol(field + 15, NULL, 10);
        else if (strncasecmp(field, "connection:", 11) == 0 && strncasecmp(field + 11, " close", 6) == 0) *close_after = 1;
        else if (strncasecmp(field, "transfer-encoding:", 18) == 0) return -1;  // the gateway never chunks
    }
    if (content_length < 0) content_length = 0;
    if (c->in_len < header_len + (size_t)content_length) return 0;
    return (long)(header_len + (size_t)content_length);
}

// Reads what arrived; returns 1 when the connection finished a response and is idle again.
static int conn_read(Conn *c, uint64_t *answered_at) {
    for (;;) {
        if (c->in_cap - c->in_len < READ_CHUNK) {
            c->in_cap = c->in_cap * 2 + READ_CHUNK;
            c->in = realloc(c->in, c->in_cap);
            if (!c->in) die("out of memory");
        }
        ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
        if (n == 0) {
            if (c->state == C_BUSY) errors_closed++;
            conn_close(c);
            return 0;
        }
        if (n < 0) {
            if (errno == EAGAIN) break;
            if (errno == EINTR) continue;
            if (c->state == C_BUSY) errors_closed++;
            conn_close(c);
            return 0;
        }
        c->in_len += (size_t)n;
    }
    if (c->state != C_BUSY) {
        c->in_len = 0;  // nothing was asked: ignore
        return 0;
    }
    int status = 0, close_after = 0;
    long used = parse_response(c, &status, &close_after);
    if (used == 0) return 0;
    uint64_t at = now_ns();
    if (used < 0) {
        errors_parse++;
        conn_close(c);
        return 0;
    }
    record(c, status, at);
    *answered_at = at;
    c->in_len = 0;
    if (close_after) {
        conn_close(c);
        return 0;
    }
    c->state = C_IDLE;
    return 1;
}

static void arm_timer(uint64_t at_ns) {
    struct itimerspec spec = {0};
    if (at_ns == 0) at_ns = 1;  // 0 would disarm
    spec.it_value.tv_sec = (time_t)(at_ns / 1000000000ull);
    spec.it_value.tv_nsec = (long)(at_ns % 1000000000ull);
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &spec, NULL);
}

static int compare_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t percentile(const uint32_t *sorted, size_t n, double p) {
    if (n == 0) return 0;
    size_t index = (size_t)(p * (double)(n - 1) + 0.5);
    if (index >= n) index = n - 1;
    return sorted[index];
}

static void print_latencies(const char *name, uint32_t *values, size_t n) {
    qsort(values, n, sizeof *values, compare_u32);
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += values[i];
    printf("\"%s\": {\"count\": %zu, \"mean\": %.1f, \"p50\": %u, \"p90\": %u, \"p99\": %u, \"p999\": %u, \"max\": %u}", name, n,
           n ? sum / (double)n : 0.0, percentile(values, n, 0.50), percentile(values, n, 0.90), percentile(values, n, 0.99),
           percentile(values, n, 0.999), n ? values[n - 1] : 0);
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --target HOST:PORT [--target ...] --path PATH --body FILE [--header 'Name: value']...\n"
            "               (--rate R --duration SECONDS [--connections K] | --requests N --concurrency C)\n"
            "               [--timeout SECONDS]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *path = NULL, *body_file = NULL;
    const char *headers[MAX_HEADERS];
    int header_count = 0;
    double rate = 0, duration = 0;
    long requests = 0;
    int concurrency = 0, connections = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!value) usage();
        i++;
        if (!strcmp(arg, "--target")) {
            if (target_count == MAX_TARGETS) die("too many targets");
            Target *t = &targets[target_count++];
            const char *colon = strrchr(value, ':');
            if (!colon || (size_t)(colon - value) >= sizeof t->host) die("--target wants HOST:PORT");
            memcpy(t->host, value, (size_t)(colon - value));
            t->address.sin_family = AF_INET;
            t->address.sin_port = htons((uint16_t)atoi(colon + 1));
            if (inet_pton(AF_INET, t->host, &t->address.sin_addr) != 1) die("--target host must be an IPv4 address");
        } else if (!strcmp(arg, "--path")) path = value;
        else if (!strcmp(arg, "--body")) body_file = value;
        else if (!strcmp(arg, "--header")) {
            if (header_count == MAX_HEADERS) die("too many headers");
            headers[header_count++] = value;
        } else if (!strcmp(arg, "--rate")) rate = atof(value);
        else if (!strcmp(arg, "--duration")) duration = atof(value);
        else if (!strcmp(arg, "--requests")) requests = atol(value);
        else if (!strcmp(arg, "--concurrency")) concurrency = atoi(value);
        else if (!strcmp(arg, "--connections")) connections = atoi(value);
        else if (!strcmp(arg, "--timeout")) timeout_ns = (uint64_t)(atof(value) * 1e9);
        else usage();
    }
    int open_loop = rate > 0;
    if (!target_count || !path || !body_file) usage();
    if (open_loop ? duration <= 0 : (requests <= 0 || concurrency <= 0)) usage();
    if (open_loop) {
        requests = (long)(rate * duration);
        conn_count = connections > 0 ? connections : 128;
    } else {
        conn_count = concurrency;
    }
    if (requests <= 0 || requests > 50000000) die("the run must have 1 to 50,000,000 requests");

    FILE *f = fopen(body_file, "rb");
    if (!f) die("cannot open --body");
    fseek(f, 0, SEEK_END);
    long body_len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *body = malloc((size_t)body_len + 1);
    if (!body || fread(body, 1, (size_t)body_len, f) != (size_t)body_len) die("cannot read --body");
    fclose(f);
    size_t cap = (size_t)body_len + 4096;
    request = malloc(cap);
    int n = snprintf(request, cap, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %ld\r\n", path,
                     targets[0].host, body_len);
    for (int i = 0; i < header_count; i++) n += snprintf(request + n, cap - (size_t)n, "%s\r\n", headers[i]);
    n += snprintf(request + n, cap - (size_t)n, "\r\n");
    memcpy(request + n, body, (size_t)body_len);
    request_len = (size_t)n + (size_t)body_len;

    latency_cap = (size_t)requests;
    latency_us = malloc(latency_cap * sizeof *latency_us);
    service_us = malloc(latency_cap * sizeof *service_us);
    pending_cap = (size_t)requests + 1;
    pending = malloc(pending_cap * sizeof *pending);
    conns = calloc((size_t)conn_count, sizeof *conns);
    if (!latency_us || !service_us || !pending || !conns) die("out of memory");

    epfd = epoll_create1(EPOLL_CLOEXEC);
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &tev);
    for (int i = 0; i < conn_count; i++) {
        conns[i].fd = -1;
        conns[i].target = i % target_count;
        if (conn_open(&conns[i]) < 0) errors_connect++;
    }

    const uint64_t interval = open_loop ? (uint64_t)(1e9 / rate) : 0;
    const uint64_t start = now_ns();
    const uint64_t hard_end = start + (uint64_t)((open_loop ? duration : 3600.0) * 1e9) + timeout_ns + 5000000000ull;
    long scheduled = 0;  // open loop: requests whose due time has come
    long sent = 0;
    struct epoll_event events[256];
    int idle_stack_size = 0;
    int *idle_stack = malloc((size_t)conn_count * sizeof *idle_stack);

    while ((long)completed + (long)(errors_timeout + errors_closed + errors_parse) < requests) {
        uint64_t now = now_ns();
        if (now > hard_end) break;
        // Due requests join the FIFO (open loop).
        if (open_loop) {
            while (scheduled < requests && start + (uint64_t)scheduled * interval <= now) {
                pending[pending_tail++] = start + (uint64_t)scheduled * interval;
                scheduled++;
            }
        }
        // Idle connections take work; closed ones reconnect.
        idle_stack_size = 0;
        for (int i = 0; i < conn_count; i++) {
            Conn *c = &conns[i];
            if (c->state == C_CLOSED && sent < requests) {
                if (conn_open(c) < 0) errors_connect++;
            }
            if (c->state == C_BUSY && now - c->sent_ns > timeout_ns) {
                errors_timeout++;
                conn_close(c);
            }
            if (c->state == C_IDLE) idle_stack[idle_stack_size++] = i;
        }
        for (int k = 0; k < idle_stack_size; k++) {
            Conn *c = &conns[idle_stack[k]];
            if (open_loop) {
                if (pending_head == pending_tail) break;
                conn_send(c, pending[pending_head++], now);
            } else {
                if (sent >= requests) break;
                conn_send(c, now, now);
            }
            sent++;
        }
        // Sleep until the next due request (open loop) or an event; 100 ms at most (timeouts).
        uint64_t wake = now + 100000000ull;
        if (open_loop && scheduled < requests) {
            uint64_t next_due = start + (uint64_t)scheduled * interval;
            if (next_due < wake) wake = next_due;
        }
        arm_timer(wake);
        int ready = epoll_wait(epfd, events, 256, 200);
        if (ready < 0 && errno != EINTR) die("epoll_wait failed");
        for (int e = 0; e < ready; e++) {
            Conn *c = events[e].data.ptr;
            if (!c) {
                uint64_t expirations;
                ssize_t ignored = read(tfd, &expirations, sizeof expirations);
                (void)ignored;
                continue;
            }
            if (c->fd < 0) continue;
            if (c->state == C_CONNECTING) {
                int error = 0;
                socklen_t len = sizeof error;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &len);
                if (error) {
                    errors_connect++;
                    conn_close(c);
                    continue;
                }
                c->state = C_IDLE;
            }
            if (c->state == C_BUSY && (events[e].events & EPOLLOUT) && c->written < request_len) {
                if (conn_write(c) < 0) {
                    errors_closed++;
                    conn_close(c);
                    continue;
                }
            }
            if (events[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                uint64_t at = 0;
                if (conn_read(c, &at) && !open_loop && sent < requests) {
                    conn_send(c, at, at);
                    sent++;
                }
            }
        }
    }
    const uint64_t end = now_ns();
    size_t kept = completed < latency_cap ? completed : latency_cap;
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    double cpu = (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6 + (double)usage.ru_stime.tv_sec +
                 (double)usage.ru_stime.tv_usec / 1e6;
    double elapsed = (double)(end - start) / 1e9;

    printf("{\"mode\": \"%s\", \"requests\": %ld, \"connections\": %d, \"targets\": %d, ", open_loop ? "open" : "closed", requests,
           conn_count, target_count);
    if (open_loop) printf("\"offered_rate\": %.1f, ", rate);
    printf("\"completed\": %zu, \"elapsed_s\": %.3f, \"achieved_rate\": %.1f, \"statuses\": {", completed, elapsed,
           elapsed > 0 ? (double)completed / elapsed : 0.0);
    int first = 1;
    for (int s = 0; s < 600; s++) {
        if (!status_counts[s]) continue;
        printf("%s\"%d\": %zu", first ? "" : ", ", s, status_counts[s]);
        first = 0;
    }
    printf("}, \"errors\": {\"connect\": %zu, \"timeout\": %zu, \"closed\": %zu, \"parse\": %zu, \"unsent\": %ld}, ", errors_connect,
           errors_timeout, errors_closed, errors_parse, requests - sent);
    printf("\"cpu_s\": %.3f, \"max_rss_kib\": %ld, \"latency_us\": {", cpu, usage.ru_maxrss);
    print_latencies(open_loop ? "from_due" : "from_send", latency_us, kept);
    printf(", ");
    print_latencies("service", service_us, kept);
    printf("}}\n");
    return 0;
}

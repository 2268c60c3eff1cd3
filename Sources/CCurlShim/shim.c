#define _GNU_SOURCE
#include <curl/curl.h>
#include "CCurlShim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#if defined(__linux__)
#include <sys/eventfd.h>
#endif

// MARK: - Global init

static pthread_once_t herald_global_once = PTHREAD_ONCE_INIT;
static CURLcode herald_global_result = CURLE_FAILED_INIT;

static void herald_global_init_once(void) {
    herald_global_result = curl_global_init(CURL_GLOBAL_ALL);
}

CURLcode herald_curl_global_init(void) {
    pthread_once(&herald_global_once, herald_global_init_once);
    return herald_global_result;
}

unsigned int herald_curl_version_num(void) {
    curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
    return info ? info->version_num : 0;
}

// MARK: - Typed wrappers

CURLcode herald_easy_setopt_long(CURL *easy, CURLoption option, long value) {
    return curl_easy_setopt(easy, option, value);
}

CURLcode herald_easy_setopt_string(CURL *easy, CURLoption option, const char *value) {
    return curl_easy_setopt(easy, option, value);
}

CURLcode herald_easy_setopt_pointer(CURL *easy, CURLoption option, void *value) {
    return curl_easy_setopt(easy, option, value);
}

CURLcode herald_easy_setopt_off_t(CURL *easy, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(easy, option, value);
}

CURLcode herald_easy_getinfo_long(CURL *easy, CURLINFO info, long *value) {
    return curl_easy_getinfo(easy, info, value);
}

CURLcode herald_easy_getinfo_off_t(CURL *easy, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(easy, info, value);
}

CURLcode herald_easy_getinfo_string(CURL *easy, CURLINFO info, const char **value) {
    char *out = NULL;
    CURLcode rc = curl_easy_getinfo(easy, info, &out);
    *value = out;
    return rc;
}

CURLMcode herald_multi_setopt_long(CURLM *multi, CURLMoption option, long value) {
    return curl_multi_setopt(multi, option, value);
}

CURLSH *herald_share_create_connection_cache(void) {
    CURLSH *share = curl_share_init();
    if (share == NULL) return NULL;
    if (curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK) {
        curl_share_cleanup(share);
        return NULL;
    }
    return share;
}

int herald_multi_next_done(CURLM *multi, CURL **easy, CURLcode *result) {
    int queued = 0;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(multi, &queued)) != NULL) {
        if (msg->msg == CURLMSG_DONE) {
            *easy = msg->easy_handle;
            *result = msg->data.result;
            return 1;
        }
    }
    return 0;
}

CURLMcode herald_multi_poll_with_fd(CURLM *multi, int fd, int timeout_ms, int *fd_ready) {
    struct curl_waitfd extra;
    extra.fd = fd;
    extra.events = CURL_WAIT_POLLIN;
    extra.revents = 0;
    int numfds = 0;
    CURLMcode rc = curl_multi_poll(multi, fd >= 0 ? &extra : NULL, fd >= 0 ? 1 : 0, timeout_ms, &numfds);
    *fd_ready = (fd >= 0 && (extra.revents & CURL_WAIT_POLLIN)) ? 1 : 0;
    return rc;
}

// MARK: - Wake fd

int herald_wakefd_create(int *read_fd, int *write_fd) {
#if defined(__linux__)
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) return -1;
    *read_fd = fd;
    *write_fd = fd;
    return 0;
#else
    int fds[2];
    if (pipe(fds) != 0) return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    }
    *read_fd = fds[0];
    *write_fd = fds[1];
    return 0;
#endif
}

void herald_wakefd_signal(int write_fd) {
#if defined(__linux__)
    uint64_t one = 1;
    ssize_t n;
    do { n = write(write_fd, &one, sizeof(one)); } while (n < 0 && errno == EINTR);
    // EAGAIN means the counter is saturated: the fd is readable anyway.
#else
    char one = 1;
    ssize_t n;
    do { n = write(write_fd, &one, 1); } while (n < 0 && errno == EINTR);
    // EAGAIN means the pipe is full: the fd is readable anyway.
#endif
    (void)n;
}

void herald_wakefd_drain(int read_fd) {
#if defined(__linux__)
    uint64_t value;
    ssize_t n;
    do { n = read(read_fd, &value, sizeof(value)); } while (n < 0 && errno == EINTR);
#else
    char buffer[256];
    for (;;) {
        ssize_t n = read(read_fd, buffer, sizeof(buffer));
        if (n > 0) continue;
        if (n < 0 && errno == EINTR) continue;
        break;
    }
#endif
}

void herald_wakefd_close(int read_fd, int write_fd) {
    if (read_fd >= 0) close(read_fd);
    if (write_fd >= 0 && write_fd != read_fd) close(write_fd);
}

// MARK: - Address policy

static int in_v4(const unsigned char a[4], unsigned char b0, unsigned char b1, unsigned char b2,
                 unsigned char b3, int prefix) {
    uint32_t addr = ((uint32_t)a[0] << 24) | ((uint32_t)a[1] << 16) | ((uint32_t)a[2] << 8) | a[3];
    uint32_t net = ((uint32_t)b0 << 24) | ((uint32_t)b1 << 16) | ((uint32_t)b2 << 8) | b3;
    uint32_t mask = prefix == 0 ? 0 : (0xFFFFFFFFu << (32 - prefix));
    return (addr & mask) == (net & mask);
}

int herald_ipv4_is_restricted(const unsigned char a[4]) {
    return in_v4(a, 0, 0, 0, 0, 8)            // "this network", unspecified
        || in_v4(a, 10, 0, 0, 0, 8)           // private
        || in_v4(a, 100, 64, 0, 0, 10)        // carrier-grade NAT
        || in_v4(a, 127, 0, 0, 0, 8)          // loopback
        || in_v4(a, 169, 254, 0, 0, 16)       // link-local (cloud metadata)
        || in_v4(a, 172, 16, 0, 0, 12)        // private
        || in_v4(a, 192, 0, 0, 0, 24)         // IETF protocol assignments
        || in_v4(a, 192, 0, 2, 0, 24)         // documentation
        || in_v4(a, 192, 88, 99, 0, 24)       // 6to4 relay anycast
        || in_v4(a, 192, 168, 0, 0, 16)       // private
        || in_v4(a, 198, 18, 0, 0, 15)        // benchmarking
        || in_v4(a, 198, 51, 100, 0, 24)      // documentation
        || in_v4(a, 203, 0, 113, 0, 24)       // documentation
        || in_v4(a, 224, 0, 0, 0, 4)          // multicast
        || in_v4(a, 240, 0, 0, 0, 4);         // reserved + broadcast
}

static int all_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) return 0;
    }
    return 1;
}

int herald_ipv6_is_restricted(const unsigned char a[16]) {
    // ::/96 — unspecified, loopback and deprecated IPv4-compatible addresses.
    if (all_zero(a, 12)) return 1;
    // ::ffff:0:0/96 IPv4-mapped: judge the embedded IPv4 address.
    if (all_zero(a, 10) && a[10] == 0xff && a[11] == 0xff) return herald_ipv4_is_restricted(a + 12);
    // ::ffff:0:0:0/96 IPv4-translated.
    if (all_zero(a, 8) && a[8] == 0xff && a[9] == 0xff && a[10] == 0 && a[11] == 0)
        return herald_ipv4_is_restricted(a + 12);
    // 64:ff9b::/96 NAT64 well-known prefix: judge the embedded IPv4 address.
    if (a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b && all_zero(a + 4, 8))
        return herald_ipv4_is_restricted(a + 12);
    // 64:ff9b:1::/48 local-use NAT64.
    if (a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b && a[4] == 0x00 && a[5] == 0x01) return 1;
    // 100::/64 discard-only.
    if (a[0] == 0x01 && a[1] == 0x00 && all_zero(a + 2, 6)) return 1;
    // 2001:db8::/32 documentation.
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8) return 1;
    // 2002::/16 6to4: judge the embedded IPv4 address.
    if (a[0] == 0x20 && a[1] == 0x02) return herald_ipv4_is_restricted(a + 2);
    // fc00::/7 unique-local.
    if ((a[0] & 0xfe) == 0xfc) return 1;
    // fe80::/10 link-local, fec0::/10 deprecated site-local.
    if (a[0] == 0xfe && ((a[1] & 0xc0) == 0x80 || (a[1] & 0xc0) == 0xc0)) return 1;
    // ff00::/8 multicast.
    if (a[0] == 0xff) return 1;
    return 0;
}

int herald_address_string_is_restricted(const char *address) {
    unsigned char buffer[16];
    if (address == NULL) return -1;
    if (inet_pton(AF_INET, address, buffer) == 1) return herald_ipv4_is_restricted(buffer);
    // Strip an IPv6 zone id ("fe80::1%eth0") before parsing.
    char copy[INET6_ADDRSTRLEN + 32];
    size_t len = strlen(address);
    if (len >= sizeof(copy)) return -1;
    memcpy(copy, address, len + 1);
    char *percent = strchr(copy, '%');
    if (percent != NULL) *percent = '\0';
    if (inet_pton(AF_INET6, copy, buffer) == 1) return herald_ipv6_is_restricted(buffer);
    return -1;
}

static int sockaddr_is_restricted(const struct sockaddr *sa, socklen_t len) {
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return herald_ipv4_is_restricted((const unsigned char *)&in->sin_addr);
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        return herald_ipv6_is_restricted((const unsigned char *)&in6->sin6_addr);
    }
    // Unix domain sockets and anything else are never "public".
    return 1;
}

static void sockaddr_to_string(const struct sockaddr *sa, char *out, size_t out_len) {
    out[0] = '\0';
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)out_len);
    } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)out_len);
    } else {
        strncpy(out, "non-IP address", out_len - 1);
        out[out_len - 1] = '\0';
    }
}

// MARK: - Transfer context

typedef struct {
    unsigned char *data;
    size_t length;
    size_t capacity;
    size_t limit;
    int overflowed;
} herald_buffer;

struct herald_transfer {
    herald_buffer body;
    herald_buffer headers;
    unsigned char *upload;
    size_t upload_length;
    size_t upload_offset;
    int restrict_to_public;
    int collect_server_replies;
    int require_smtputf8;
    int smtputf8_missing;
    int blocked;
    char blocked_address[INET6_ADDRSTRLEN + 8];
};

/// Appends up to the buffer's limit. Returns 1 if everything fit.
static int buffer_append(herald_buffer *buffer, const char *data, size_t length) {
    size_t room = buffer->limit > buffer->length ? buffer->limit - buffer->length : 0;
    size_t take = length < room ? length : room;
    if (take > 0) {
        size_t needed = buffer->length + take;
        if (needed > buffer->capacity) {
            size_t capacity = buffer->capacity ? buffer->capacity : 1024;
            while (capacity < needed) capacity *= 2;
            if (capacity > buffer->limit) capacity = buffer->limit;
            unsigned char *grown = realloc(buffer->data, capacity);
            if (grown == NULL) {
                buffer->overflowed = 1;
                return 0;
            }
            buffer->data = grown;
            buffer->capacity = capacity;
        }
        memcpy(buffer->data + buffer->length, data, take);
        buffer->length += take;
    }
    if (take < length) {
        buffer->overflowed = 1;
        return 0;
    }
    return 1;
}

herald_transfer *herald_transfer_create(void) {
    return calloc(1, sizeof(herald_transfer));
}

void herald_transfer_destroy(herald_transfer *t) {
    if (t == NULL) return;
    free(t->body.data);
    free(t->headers.data);
    free(t->upload);
    free(t);
}

void herald_transfer_reset(herald_transfer *t, size_t body_limit, size_t header_limit, int restrict_to_public) {
    t->body.length = 0;
    t->body.limit = body_limit;
    t->body.overflowed = 0;
    t->headers.length = 0;
    t->headers.limit = header_limit;
    t->headers.overflowed = 0;
    // Keep at most 64 KiB of a previous body allocation around for reuse.
    if (t->body.capacity > 65536) {
        free(t->body.data);
        t->body.data = NULL;
        t->body.capacity = 0;
    }
    free(t->upload);
    t->upload = NULL;
    t->upload_length = 0;
    t->upload_offset = 0;
    t->restrict_to_public = restrict_to_public;
    t->collect_server_replies = 0;
    t->require_smtputf8 = 0;
    t->smtputf8_missing = 0;
    t->blocked = 0;
    t->blocked_address[0] = '\0';
}

void herald_transfer_trim(herald_transfer *t) {
    t->body.length = 0;
    t->headers.length = 0;
    if (t->body.capacity > 65536) {
        free(t->body.data);
        t->body.data = NULL;
        t->body.capacity = 0;
    }
    free(t->upload);
    t->upload = NULL;
    t->upload_length = 0;
    t->upload_offset = 0;
}

int herald_transfer_set_upload(herald_transfer *t, const void *data, size_t length) {
    free(t->upload);
    t->upload = NULL;
    t->upload_length = 0;
    t->upload_offset = 0;
    if (length == 0) return 0;
    t->upload = malloc(length);
    if (t->upload == NULL) return -1;
    memcpy(t->upload, data, length);
    t->upload_length = length;
    return 0;
}

static size_t herald_write_cb(char *ptr, size_t size, size_t nmemb, void *userdata) {
    herald_transfer *t = userdata;
    size_t length = size * nmemb;
    if (!buffer_append(&t->body, ptr, length)) {
        // Returning less than `length` stops the transfer with CURLE_WRITE_ERROR.
        return 0;
    }
    return length;
}

static size_t herald_header_cb(char *ptr, size_t size, size_t nitems, void *userdata) {
    herald_transfer *t = userdata;
    size_t length = size * nitems;
    // The debug callback collects the server's replies instead (all of them, once).
    if (t->collect_server_replies) return length;
    // A new HTTP status line starts a new header block (1xx interim
    // responses, CONNECT responses): keep only the final one.
    if (length >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
        t->headers.length = 0;
        t->headers.overflowed = 0;
    }
    // Headers beyond the cap are dropped silently rather than failing the transfer.
    (void)buffer_append(&t->headers, ptr, length);
    return length;
}

static size_t herald_read_cb(char *buffer, size_t size, size_t nitems, void *userdata) {
    herald_transfer *t = userdata;
    size_t room = size * nitems;
    size_t left = t->upload_length - t->upload_offset;
    size_t take = left < room ? left : room;
    if (take > 0) {
        memcpy(buffer, t->upload + t->upload_offset, take);
        t->upload_offset += take;
    }
    return take;
}

static curl_socket_t herald_opensocket_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *address) {
    herald_transfer *t = clientp;
    (void)purpose;
    if (t->restrict_to_public && sockaddr_is_restricted(&address->addr, address->addrlen)) {
        t->blocked = 1;
        sockaddr_to_string(&address->addr, t->blocked_address, sizeof(t->blocked_address));
        return CURL_SOCKET_BAD;
    }
    int type = address->socktype;
#if defined(SOCK_CLOEXEC)
    type |= SOCK_CLOEXEC;
#endif
    return socket(address->family, type, address->protocol);
}

void herald_transfer_collect_server_replies(herald_transfer *t) {
    t->collect_server_replies = 1;
}

static int herald_debug_cb(CURL *easy, curl_infotype type, char *data, size_t size, void *userdata) {
    herald_transfer *t = userdata;
    (void)easy;
    if (type == CURLINFO_HEADER_IN) (void)buffer_append(&t->headers, data, size);
    return 0;
}

void herald_transfer_require_smtputf8(herald_transfer *t) {
    t->require_smtputf8 = 1;
}

int herald_transfer_smtputf8_missing(const herald_transfer *t) {
    return t->smtputf8_missing;
}

/// 1 when one of the collected response lines is an EHLO keyword line "250-SMTPUTF8" or
/// "250 SMTPUTF8" (case-insensitive, optionally followed by parameters).
static int responses_announce_smtputf8(const herald_buffer *lines) {
    static const char keyword[] = "SMTPUTF8";
    const size_t keyword_length = sizeof(keyword) - 1;
    size_t start = 0;
    while (start < lines->length) {
        size_t end = start;
        while (end < lines->length && lines->data[end] != '\n') end++;
        const unsigned char *line = lines->data + start;
        size_t length = end - start;
        if (length > 0 && line[length - 1] == '\r') length--;
        if (length >= 4 + keyword_length && memcmp(line, "250", 3) == 0 && (line[3] == '-' || line[3] == ' ')
            && strncasecmp((const char *)line + 4, keyword, keyword_length) == 0
            && (length == 4 + keyword_length || line[4 + keyword_length] == ' ')) {
            return 1;
        }
        start = end + 1;
    }
    return 0;
}

/// Runs after a connection was established *or taken from the connection
/// cache*, before the request is sent: a cached connection opened by an
/// unrestricted transfer never passed the open-socket check. For SMTP this is
/// after the greeting, EHLO, STARTTLS and AUTH, before MAIL FROM.
static int herald_prereq_cb(void *clientp, char *primary_ip, char *local_ip, int primary_port, int local_port) {
    herald_transfer *t = clientp;
    (void)local_ip;
    (void)primary_port;
    (void)local_port;
    if (t->restrict_to_public && herald_address_string_is_restricted(primary_ip) != 0) {
        t->blocked = 1;
        strncpy(t->blocked_address, primary_ip ? primary_ip : "", sizeof(t->blocked_address) - 1);
        t->blocked_address[sizeof(t->blocked_address) - 1] = '\0';
        return CURL_PREREQFUNC_ABORT;
    }
    if (t->require_smtputf8 && !responses_announce_smtputf8(&t->headers)) {
        t->smtputf8_missing = 1;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

CURLcode herald_transfer_install(herald_transfer *t, CURL *easy, int use_read_callback) {
    CURLcode rc;
#define HERALD_TRY(expr) do { rc = (expr); if (rc != CURLE_OK) return rc; } while (0)
    HERALD_TRY(curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, herald_write_cb));
    HERALD_TRY(curl_easy_setopt(easy, CURLOPT_WRITEDATA, (void *)t));
    HERALD_TRY(curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, herald_header_cb));
    HERALD_TRY(curl_easy_setopt(easy, CURLOPT_HEADERDATA, (void *)t));
    if (t->restrict_to_public) {
        HERALD_TRY(curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, herald_opensocket_cb));
        HERALD_TRY(curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, (void *)t));
    }
    if (t->restrict_to_public || t->require_smtputf8) {
        HERALD_TRY(curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, herald_prereq_cb));
        HERALD_TRY(curl_easy_setopt(easy, CURLOPT_PREREQDATA, (void *)t));
    }
    if (t->collect_server_replies) {
        HERALD_TRY(curl_easy_setopt(easy, CURLOPT_DEBUGFUNCTION, herald_debug_cb));
        HERALD_TRY(curl_easy_setopt(easy, CURLOPT_DEBUGDATA, (void *)t));
        HERALD_TRY(curl_easy_setopt(easy, CURLOPT_VERBOSE, 1L));
    }
    if (use_read_callback) {
        HERALD_TRY(curl_easy_setopt(easy, CURLOPT_READFUNCTION, herald_read_cb));
        HERALD_TRY(curl_easy_setopt(easy, CURLOPT_READDATA, (void *)t));
        HERALD_TRY(curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)t->upload_length));
    }
#undef HERALD_TRY
    return CURLE_OK;
}

const unsigned char *herald_transfer_body(const herald_transfer *t, size_t *length) {
    *length = t->body.length;
    return t->body.data;
}

const unsigned char *herald_transfer_headers(const herald_transfer *t, size_t *length) {
    *length = t->headers.length;
    return t->headers.data;
}

int herald_transfer_body_truncated(const herald_transfer *t) {
    return t->body.overflowed;
}

int herald_transfer_blocked(const herald_transfer *t) {
    return t->blocked;
}

const char *herald_transfer_blocked_address(const herald_transfer *t) {
    return t->blocked_address;
}

#ifndef HERALD_CCURLSHIM_H
#define HERALD_CCURLSHIM_H

// Fixed-argument wrappers over libcurl's variadic APIs, plus the C callbacks
// (body/header collection, upload source, SSRF guard) used by HeraldHTTPRuntime.
//
// Nothing in here is thread-safe unless stated: a CURL / CURLM handle and the
// herald_transfer attached to it are owned by exactly one thread (the runtime's
// loop thread).

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// MARK: - Global init

/// Calls `curl_global_init(CURL_GLOBAL_ALL)` exactly once per process
/// (guarded by pthread_once). Returns the CURLcode of that single call.
CURLcode herald_curl_global_init(void);

/// LIBCURL_VERSION_NUM of the library actually loaded at run time.
unsigned int herald_curl_version_num(void);

// MARK: - Typed setopt / getinfo wrappers

CURLcode herald_easy_setopt_long(CURL *easy, CURLoption option, long value);
CURLcode herald_easy_setopt_string(CURL *easy, CURLoption option, const char *value);
CURLcode herald_easy_setopt_pointer(CURL *easy, CURLoption option, void *value);
CURLcode herald_easy_setopt_off_t(CURL *easy, CURLoption option, curl_off_t value);

CURLcode herald_easy_getinfo_long(CURL *easy, CURLINFO info, long *value);
CURLcode herald_easy_getinfo_off_t(CURL *easy, CURLINFO info, curl_off_t *value);
CURLcode herald_easy_getinfo_string(CURL *easy, CURLINFO info, const char **value);

CURLMcode herald_multi_setopt_long(CURLM *multi, CURLMoption option, long value);

/// A share handle that holds a connection cache (CURL_LOCK_DATA_CONNECT) and nothing else.
/// No lock callbacks: it is used by the loop thread only. NULL when out of memory or unsupported.
CURLSH *herald_share_create_connection_cache(void);

/// Next CURLMSG_DONE message of `multi`. Returns 1 and fills `easy`/`result`
/// when one was read, 0 when the queue is empty.
int herald_multi_next_done(CURLM *multi, CURL **easy, CURLcode *result);

/// `curl_multi_poll` with one extra file descriptor (the runtime's wake fd).
/// `fd_ready` is set to 1 when that fd became readable.
CURLMcode herald_multi_poll_with_fd(CURLM *multi, int fd, int timeout_ms, int *fd_ready);

// MARK: - Wake fd (eventfd on Linux, pipe elsewhere)

/// Creates a non-blocking, close-on-exec wake channel. On Linux this is one
/// eventfd (read_fd == write_fd); elsewhere a pipe. Returns 0 or -1 (errno set).
int herald_wakefd_create(int *read_fd, int *write_fd);
/// Makes `read_fd` readable. Safe to call from any thread while the fd is open.
void herald_wakefd_signal(int write_fd);
/// Consumes all pending signals. Call only from the thread polling the fd.
void herald_wakefd_drain(int read_fd);
void herald_wakefd_close(int read_fd, int write_fd);

// MARK: - Address policy (SSRF guard)

/// 1 when the IPv4 address (network byte order bytes) is not a public unicast
/// address: loopback, private, CGNAT, link-local, unspecified/"this network",
/// multicast, reserved, broadcast, documentation and benchmarking ranges.
int herald_ipv4_is_restricted(const unsigned char addr[4]);
/// 1 when the IPv6 address is loopback, unspecified, link-local, site-local,
/// unique-local, multicast, documentation, or embeds a restricted IPv4
/// address (IPv4-mapped, IPv4-compatible, NAT64 64:ff9b::/96, 6to4 2002::/16).
int herald_ipv6_is_restricted(const unsigned char addr[16]);
/// Parses a textual IPv4/IPv6 address. Returns 1 restricted, 0 public,
/// -1 when the string is not an IP address literal.
int herald_address_string_is_restricted(const char *address);

// MARK: - Transfer context

/// Per-transfer state shared with libcurl callbacks: response body and header
/// collection (both capped), an optional upload source, and the SSRF guard.
typedef struct herald_transfer herald_transfer;

herald_transfer *herald_transfer_create(void);
void herald_transfer_destroy(herald_transfer *transfer);

/// Clears collected data and sets the limits for the next use.
void herald_transfer_reset(herald_transfer *transfer, size_t body_limit, size_t header_limit,
                           int restrict_to_public);

/// Frees large buffers and the upload copy so an idle context holds little memory.
void herald_transfer_trim(herald_transfer *transfer);

/// Copies `length` bytes as the upload source served by the read callback.
/// Returns 0 on success, -1 when out of memory.
int herald_transfer_set_upload(herald_transfer *transfer, const void *data, size_t length);

/// SMTP: collect every server reply line (libcurl hands only the greeting and EHLO answer to the
/// header callback; the replies to MAIL, RCPT and DATA reach only the debug callback, which this
/// installs with CURLOPT_VERBOSE, keeping CURLINFO_HEADER_IN and dropping everything else, so
/// neither the message nor AUTH's credentials are copied). herald_transfer_headers returns them.
/// Reset by herald_transfer_reset.
void herald_transfer_collect_server_replies(herald_transfer *transfer);

/// SMTP: refuse to send (CURLE_ABORTED_BY_CALLBACK before MAIL FROM) unless the server's EHLO
/// answer on this transfer's connection announces SMTPUTF8 (RFC 6531). Use with a fresh
/// connection, so that the EHLO answer is among the collected response lines. Reset by
/// herald_transfer_reset.
void herald_transfer_require_smtputf8(herald_transfer *transfer);
/// 1 when the transfer was stopped because SMTPUTF8 was required and not announced.
int herald_transfer_smtputf8_missing(const herald_transfer *transfer);

/// Installs the write/header callbacks and, depending on the flags, the SSRF
/// guard (CURLOPT_OPENSOCKETFUNCTION + CURLOPT_PREREQFUNCTION), the SMTPUTF8
/// check (CURLOPT_PREREQFUNCTION) and the upload read callback on `easy`.
/// Returns the first failing CURLcode or CURLE_OK.
CURLcode herald_transfer_install(herald_transfer *transfer, CURL *easy, int use_read_callback);

const unsigned char *herald_transfer_body(const herald_transfer *transfer, size_t *length);
const unsigned char *herald_transfer_headers(const herald_transfer *transfer, size_t *length);
/// 1 when the response body exceeded the limit (the transfer was stopped).
int herald_transfer_body_truncated(const herald_transfer *transfer);
/// 1 when the SSRF guard refused a connect (or the reuse of a connection).
int herald_transfer_blocked(const herald_transfer *transfer);
/// Textual form of the last refused address ("" when none).
const char *herald_transfer_blocked_address(const herald_transfer *transfer);

#ifdef __cplusplus
}
#endif

#endif

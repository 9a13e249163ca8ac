// The C edge of the package. Everything hiredis-specific that Swift cannot express cleanly lives here as a
// `static inline` helper; no C type crosses into the public Swift API.
#ifndef CHIREDIS_SHIM_H
#define CHIREDIS_SHIM_H

#include <hiredis/hiredis.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#ifdef __linux__
int sched_getcpu(void);  // <sched.h> declares it only under _GNU_SOURCE, which would change what hiredis sees
#endif

/// The CPU the calling thread runs on, or -1 where the system cannot say.
static inline int chiredis_current_cpu(void) {
#ifdef __linux__
    return sched_getcpu();
#else
    return -1;
#endif
}

static inline struct timeval chiredis_timeval(long milliseconds) {
    struct timeval tv;
    tv.tv_sec = milliseconds / 1000;
    tv.tv_usec = (milliseconds % 1000) * 1000;
    return tv;
}

/// Connects over TCP. Returns NULL only when hiredis could not allocate a context.
static inline redisContext *chiredis_connect_tcp(const char *host, int port, long timeout_ms) {
    return redisConnectWithTimeout(host, port, chiredis_timeval(timeout_ms));
}

static inline redisContext *chiredis_connect_unix(const char *path, long timeout_ms) {
    return redisConnectUnixWithTimeout(path, chiredis_timeval(timeout_ms));
}

/// `redisReconnect` and a fresh context both start without `SO_RCVTIMEO` (hiredis #593): call after every connect.
static inline int chiredis_set_timeout(redisContext *c, long timeout_ms) {
    return redisSetTimeout(c, chiredis_timeval(timeout_ms));
}

/// `redisGetReply` that also captures `errno` from the same call, so a read timeout (`EAGAIN`) can be told apart
/// from a reset or an end of stream.
static inline int chiredis_get_reply(redisContext *c, redisReply **reply, int *saved_errno) {
    errno = 0;
    void *out = NULL;
    int rc = redisGetReply(c, &out);
    *saved_errno = errno;
    *reply = (redisReply *)out;
    return rc;
}

/// Takes one complete reply out of the reader without touching the socket. `*reply` is NULL when none is buffered.
static inline int chiredis_reader_reply(redisContext *c, redisReply **reply) {
    void *out = NULL;
    int rc = redisGetReplyFromReader(c, &out);
    *reply = (redisReply *)out;
    return rc;
}

/// Reads what the socket has into the reader (one `read(2)`), capturing `errno`.
static inline int chiredis_buffer_read(redisContext *c, int *saved_errno) {
    errno = 0;
    int rc = redisBufferRead(c);
    *saved_errno = errno;
    return rc;
}

/// Writes the whole output buffer, capturing `errno`.
static inline int chiredis_flush(redisContext *c, int *saved_errno) {
    int done = 0;
    errno = 0;
    do {
        if (redisBufferWrite(c, &done) == REDIS_ERR) {
            *saved_errno = errno;
            return REDIS_ERR;
        }
    } while (!done);
    *saved_errno = 0;
    return REDIS_OK;
}

static inline const char *chiredis_errstr(const redisContext *c) { return c->errstr; }

static inline redisReply *chiredis_reply_element(const redisReply *r, size_t index) { return r->element[index]; }

/// hiredis 0.14.1 writes without MSG_NOSIGNAL: a write to a closed peer would kill the process.
static inline void chiredis_ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }

/// Waits until `fd` is readable or `wake_fd` is readable, or the timeout passes. Returns a bit set:
/// 1 = fd readable (or in error), 2 = woken, 0 = timed out; -1 on a poll error other than EINTR.
static inline int chiredis_wait_readable(int fd, int wake_fd, int timeout_ms) {
    struct pollfd fds[2];
    fds[0].fd = fd; fds[0].events = POLLIN; fds[0].revents = 0;
    fds[1].fd = wake_fd; fds[1].events = POLLIN; fds[1].revents = 0;
    int rc = poll(fds, 2, timeout_ms);
    if (rc < 0) { return errno == EINTR ? 0 : -1; }
    int result = 0;
    if (fds[0].revents & (POLLIN | POLLERR | POLLHUP)) { result |= 1; }
    if (fds[1].revents & (POLLIN | POLLERR | POLLHUP)) { result |= 2; }
    return result;
}

/// Names the calling thread (visible in `top -H`, `gdb`, `/proc/<pid>/task/*/comm`); Linux keeps 15 bytes.
static inline void chiredis_set_thread_name(const char *name) {
#ifdef __linux__
    prctl(PR_SET_NAME, name, 0, 0, 0);
#else
    (void)name;
#endif
}

#endif

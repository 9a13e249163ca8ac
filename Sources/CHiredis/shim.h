// The C edge of the package. Everything hiredis-specific that Swift cannot express cleanly lives here as a
// `static inline` helper; no C type crosses into the public Swift API.
#ifndef CHIREDIS_SHIM_H
#define CHIREDIS_SHIM_H

#include <hiredis/hiredis.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
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

static inline redisReply *chiredis_reply_element(const redisReply *r, size_t index) { return r->element[index]; }

/// A write to a closed peer raises `SIGPIPE`, which would kill the process: the connection sends with
/// `MSG_NOSIGNAL`, and this covers any other write (hiredis 0.14.1 writes without it).
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

// MARK: The socket, owned by the connection; hiredis only parses what is read from it.

/// Milliseconds since an arbitrary start, for the connect deadline.
static inline long long chiredis_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/// Finishes a non-blocking connect on `fd` within `timeout_ms`; 0, or -1 with errno set (ETIMEDOUT on time-out).
static inline int chiredis_finish_connect(int fd, const struct sockaddr *address, socklen_t length, int timeout_ms) {
    if (connect(fd, address, length) == 0) { return 0; }
    if (errno != EINPROGRESS) { return -1; }
    struct pollfd pfd;
    pfd.fd = fd; pfd.events = POLLOUT; pfd.revents = 0;
    long long deadline = chiredis_now_ms() + timeout_ms;
    for (;;) {
        long long left = deadline - chiredis_now_ms();
        if (left <= 0) { errno = ETIMEDOUT; return -1; }
        int rc = poll(&pfd, 1, (int)left);
        if (rc > 0) { break; }
        if (rc == 0) { errno = ETIMEDOUT; return -1; }
        if (errno != EINTR) { return -1; }
    }
    int error = 0;
    socklen_t size = sizeof(error);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) < 0) { return -1; }
    if (error != 0) { errno = error; return -1; }
    return 0;
}

/// A new non-blocking, close-on-exec socket, or -1.
static inline int chiredis_new_socket(int family) {
    int fd = socket(family, SOCK_STREAM, 0);
    if (fd < 0) { return -1; }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/// Back to blocking for the connection's life (reads happen only once `poll` says so; writes block at most
/// `SO_SNDTIMEO`), with the send timeout set.
static inline void chiredis_socket_ready(int fd, int send_timeout_ms) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    struct timeval tv;
    tv.tv_sec = send_timeout_ms / 1000;
    tv.tv_usec = (send_timeout_ms % 1000) * 1000;
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/// Connects over TCP to the first address of `host` that answers, within `timeout_ms` in all, with `TCP_NODELAY`
/// and keep-alive (probes after 15 s idle, every 5 s, 3 of them, as hiredis does). Returns the socket, or -1 with a
/// reason in `reason` (and `*timed_out` set when the time ran out).
static inline int chiredis_connect_tcp_socket(
    const char *host, int port, int timeout_ms, int send_timeout_ms, char *reason, size_t reason_size,
    int *timed_out) {
    *timed_out = 0;
    char service[16];
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints, *found = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, service, &hints, &found);
    if (rc != 0) {
        snprintf(reason, reason_size, "%s", gai_strerror(rc));
        return -1;
    }
    long long deadline = chiredis_now_ms() + timeout_ms;
    int fd = -1;
    int saved = 0;
    for (struct addrinfo *address = found; address != NULL; address = address->ai_next) {
        long long left = deadline - chiredis_now_ms();
        if (left <= 0) { saved = ETIMEDOUT; break; }
        fd = chiredis_new_socket(address->ai_family);
        if (fd < 0) { saved = errno; continue; }
        if (chiredis_finish_connect(fd, address->ai_addr, address->ai_addrlen, (int)left) == 0) { break; }
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(found);
    if (fd < 0) {
        if (saved == ETIMEDOUT) { *timed_out = 1; }
        snprintf(reason, reason_size, "%s", strerror(saved ? saved : ECONNREFUSED));
        return -1;
    }
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
#ifdef __linux__
    int idle = 15, interval = 5, count = 3;
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
#endif
    chiredis_socket_ready(fd, send_timeout_ms);
    return fd;
}

/// Connects to a Unix socket within `timeout_ms`. Returns the socket, or -1 with a reason.
static inline int chiredis_connect_unix_socket(
    const char *path, int timeout_ms, int send_timeout_ms, char *reason, size_t reason_size, int *timed_out) {
    *timed_out = 0;
    struct sockaddr_un address;
    memset(&address, 0, sizeof(address));
    address.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(address.sun_path)) {
        snprintf(reason, reason_size, "the socket path is longer than %zu bytes", sizeof(address.sun_path) - 1);
        return -1;
    }
    strncpy(address.sun_path, path, sizeof(address.sun_path) - 1);
    int fd = chiredis_new_socket(AF_UNIX);
    if (fd < 0 || chiredis_finish_connect(fd, (struct sockaddr *)&address, sizeof(address), timeout_ms) != 0) {
        int saved = errno;
        if (fd >= 0) { close(fd); }
        if (saved == ETIMEDOUT) { *timed_out = 1; }
        snprintf(reason, reason_size, "%s", strerror(saved));
        return -1;
    }
    chiredis_socket_ready(fd, send_timeout_ms);
    return fd;
}

/// Sends all of `length` bytes (never raising `SIGPIPE`). 0, or -1 with errno (EAGAIN: the send timeout passed).
static inline int chiredis_send_all(int fd, const void *bytes, size_t length) {
    const char *cursor = (const char *)bytes;
    while (length > 0) {
        ssize_t sent = send(fd, cursor, length, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR) { continue; }
            return -1;
        }
        cursor += sent;
        length -= (size_t)sent;
    }
    return 0;
}

/// Receives what the socket has (call once `poll` says readable): the count, 0 at the end of the stream, or -1 with
/// errno.
static inline long chiredis_receive(int fd, void *buffer, size_t capacity) {
    for (;;) {
        ssize_t got = recv(fd, buffer, capacity, 0);
        if (got < 0 && errno == EINTR) { continue; }
        return (long)got;
    }
}

static inline const char *chiredis_reader_errstr(const redisReader *r) { return r->errstr; }

/// The hiredis this was built with, as major * 10000 + minor * 100 + patch. With 1.x headers it also reads
/// `hiredisAllocFns`, which only 1.x defines: a build that compiled 1.x headers but linked 0.14's library fails to
/// link instead of running with the wrong reader.
static inline int chiredis_version(void) {
#if HIREDIS_MAJOR >= 1
    if (hiredisAllocFns.mallocFn == NULL) { return -1; }
#endif
    return HIREDIS_MAJOR * 10000 + HIREDIS_MINOR * 100 + HIREDIS_PATCH;
}

static inline int chiredis_errno(void) { return errno; }

#endif

// The OpenSSL edge of the package: the system OpenSSL (Debian's libssl3) on a socket the connection owns, and
// AES-256-GCM for session values at rest. Every OpenSSL call, macro and error queue is handled here as a
// `static inline` helper, so Swift sees a handful of functions with plain C types and no OpenSSL type crosses into
// the public Swift API.
#ifndef COPENSSL_SHIM_H
#define COPENSSL_SHIM_H

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/// What a call on an established TLS connection came to, when it moved no bytes.
enum {
    CTLS_WOULD_BLOCK = -2,  // nothing to read yet (a partial record, or a session ticket with no data after it)
    CTLS_FAILED = -1,       // the connection is broken; the reason is in the buffer given
    CTLS_CLOSED = 0,        // the server closed the connection
};

static inline long long ctls_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/// The oldest error OpenSSL queued on this thread, as text, appended to `reason`; the queue is emptied, so the next
/// connection on this thread starts clean.
static inline void ctls_take_error(const char *prefix, char *reason, size_t reason_size) {
    unsigned long code = ERR_get_error();
    const char *text = code != 0 ? ERR_reason_error_string(code) : NULL;
    if (text != NULL) {
        snprintf(reason, reason_size, "%s%s", prefix, text);
    } else if (errno != 0) {
        snprintf(reason, reason_size, "%s%s", prefix, strerror(errno));
    } else {
        snprintf(reason, reason_size, "%sthe server closed the connection", prefix);
    }
    ERR_clear_error();
}

/// A client context: TLS 1.2 or later, renegotiation off, and the server's chain verified against `ca_file` (or the
/// system's trust store when it is NULL) unless `verify` is 0. With `cert_file` and `key_file`, the client presents
/// that certificate (mutual TLS). NULL with a reason when a file cannot be used.
static inline SSL_CTX *ctls_context_new(
    const char *ca_file, const char *cert_file, const char *key_file, int verify, char *reason, size_t reason_size) {
    ERR_clear_error();
    SSL_CTX *context = SSL_CTX_new(TLS_client_method());
    if (context == NULL) {
        ctls_take_error("cannot create a TLS context: ", reason, reason_size);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
    SSL_CTX_set_options(context, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(context, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_verify(context, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    int loaded = ca_file != NULL ? SSL_CTX_load_verify_locations(context, ca_file, NULL)
                                 : SSL_CTX_set_default_verify_paths(context);
    if (loaded != 1) {
        char prefix[512];
        snprintf(prefix, sizeof(prefix), "cannot read the CA file %s: ", ca_file != NULL ? ca_file : "(system)");
        ctls_take_error(prefix, reason, reason_size);
        SSL_CTX_free(context);
        return NULL;
    }
    if (cert_file != NULL && key_file != NULL) {
        char prefix[512];
        if (SSL_CTX_use_certificate_chain_file(context, cert_file) != 1) {
            snprintf(prefix, sizeof(prefix), "cannot read the client certificate %s: ", cert_file);
            ctls_take_error(prefix, reason, reason_size);
            SSL_CTX_free(context);
            return NULL;
        }
        if (SSL_CTX_use_PrivateKey_file(context, key_file, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(context) != 1) {
            snprintf(prefix, sizeof(prefix), "cannot use the client key %s: ", key_file);
            ctls_take_error(prefix, reason, reason_size);
            SSL_CTX_free(context);
            return NULL;
        }
    }
    return context;
}

static inline void ctls_context_free(SSL_CTX *context) { SSL_CTX_free(context); }

/// Waits for `fd` to be ready for what OpenSSL asked (`error` is SSL_ERROR_WANT_READ or _WANT_WRITE) until the
/// deadline. 1 ready, 0 timed out, -1 poll failed.
static inline int ctls_wait(int fd, int error, long long deadline_ms) {
    struct pollfd pfd;
    pfd.fd = fd;
    pfd.events = error == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
    for (;;) {
        long long left = deadline_ms - ctls_now_ms();
        if (left <= 0) { return 0; }
        pfd.revents = 0;
        int rc = poll(&pfd, 1, (int)left);
        if (rc > 0) { return 1; }
        if (rc == 0) { return 0; }
        if (errno != EINTR) { return -1; }
    }
}

/// Called by OpenSSL when the server asks for a client certificate and none is configured: notes it in the int the
/// session's app data points to, and goes on without one (the server decides; TLS 1.3 tells the client only after the
/// handshake, often as a reset the alert is lost in).
static inline int ctls_note_certificate_request(SSL *session, X509 **certificate, EVP_PKEY **key) {
    (void)certificate; (void)key;
    int *requested = (int *)SSL_get_app_data(session);
    if (requested != NULL) { *requested = 1; }
    return 0;
}

/// Runs the TLS handshake on the connected socket `fd` within `timeout_ms`, sending `server_name` as SNI (unless it
/// is an address) and, when verifying, checking that the certificate names it. The socket is left non-blocking.
/// Returns the session, or NULL with the reason (and `*timed_out` set when the time ran out);
/// `*certificate_requested` says whether the server asked for a client certificate the client does not have.
static inline SSL *ctls_connect(
    SSL_CTX *context, int fd, const char *server_name, int timeout_ms, char *reason, size_t reason_size,
    int *timed_out, int *certificate_requested) {
    *timed_out = 0;
    *certificate_requested = 0;
    ERR_clear_error();
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    SSL *session = SSL_new(context);
    if (session == NULL || SSL_set_fd(session, fd) != 1) {
        ctls_take_error("cannot create a TLS session: ", reason, reason_size);
        if (session != NULL) { SSL_free(session); }
        return NULL;
    }
    SSL_set_app_data(session, certificate_requested);
    if (SSL_get_certificate(session) == NULL) { SSL_CTX_set_client_cert_cb(context, ctls_note_certificate_request); }
    if (server_name != NULL && server_name[0] != '\0') {
        unsigned char address[16];
        int is_address = inet_pton(AF_INET, server_name, address) == 1 || inet_pton(AF_INET6, server_name, address) == 1;
        int named;
        if (is_address) {
            // RFC 6066: SNI carries host names only; an address is checked against the certificate's IP entries.
            named = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(session), server_name);
        } else {
            named = SSL_set_tlsext_host_name(session, server_name) == 1 && SSL_set1_host(session, server_name) == 1;
        }
        if (named != 1) {
            ctls_take_error("cannot set the server name: ", reason, reason_size);
            SSL_free(session);
            return NULL;
        }
    }
    long long deadline = ctls_now_ms() + timeout_ms;
    for (;;) {
        errno = 0;
        int rc = SSL_connect(session);
        if (rc == 1) {
            SSL_set_app_data(session, NULL);  // `certificate_requested` belongs to the caller's frame
            return session;
        }
        int error = SSL_get_error(session, rc);
        if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
            int ready = ctls_wait(fd, error, deadline);
            if (ready == 1) { continue; }
            if (ready == 0) {
                *timed_out = 1;
                snprintf(reason, reason_size,
                         "the server accepted TCP but never answered the TLS handshake (a plaintext port waits "
                         "silently for a command: is this the server's TLS port?)");
            } else {
                snprintf(reason, reason_size, "poll failed: %s", strerror(errno));
            }
            SSL_free(session);
            return NULL;
        }
        long verdict = SSL_get_verify_result(session);
        if (verdict != X509_V_OK) {
            snprintf(reason, reason_size, "certificate verify failed: %s", X509_verify_cert_error_string(verdict));
            ERR_clear_error();
        } else if (error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
            snprintf(reason, reason_size, "the server closed the connection during the TLS handshake%s%s",
                     errno != 0 ? ": " : "", errno != 0 ? strerror(errno) : "");
        } else {
            ctls_take_error("", reason, reason_size);
        }
        SSL_free(session);
        return NULL;
    }
}

/// Sends a close_notify without waiting for the server's, and frees the session (the socket stays open).
static inline void ctls_close(SSL *session) {
    SSL_shutdown(session);
    ERR_clear_error();
    SSL_free(session);
}

/// Decrypted bytes OpenSSL holds that a `poll` on the socket would not announce.
static inline int ctls_pending(const SSL *session) { return SSL_pending(session); }

/// Reads what there is: a count, CTLS_CLOSED, CTLS_WOULD_BLOCK, or CTLS_FAILED with the reason.
static inline long ctls_read(SSL *session, void *buffer, size_t capacity, char *reason, size_t reason_size) {
    errno = 0;
    int count = SSL_read(session, buffer, (int)(capacity > 0x40000000 ? 0x40000000 : capacity));
    if (count > 0) { return count; }
    int error = SSL_get_error(session, count);
    switch (error) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return CTLS_WOULD_BLOCK;
    case SSL_ERROR_ZERO_RETURN:
        return CTLS_CLOSED;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0) {
            if (errno == 0) { return CTLS_CLOSED; }  // the peer closed without a close_notify
            snprintf(reason, reason_size, "%s", strerror(errno));
            return CTLS_FAILED;
        }
        ctls_take_error("", reason, reason_size);
        return CTLS_FAILED;
    default:
        ctls_take_error("", reason, reason_size);
        return CTLS_FAILED;
    }
}

/// Writes all of `length` bytes, waiting for the socket at most `timeout_ms` in all. 0; CTLS_WOULD_BLOCK when the
/// time ran out; CTLS_FAILED with the reason.
static inline int ctls_write_all(
    SSL *session, int fd, const void *bytes, size_t length, int timeout_ms, char *reason, size_t reason_size) {
    const char *cursor = (const char *)bytes;
    long long deadline = ctls_now_ms() + timeout_ms;
    while (length > 0) {
        errno = 0;
        int chunk = (int)(length > 0x40000000 ? 0x40000000 : length);
        int written = SSL_write(session, cursor, chunk);
        if (written > 0) {
            cursor += written;
            length -= (size_t)written;
            continue;
        }
        int error = SSL_get_error(session, written);
        if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
            int ready = ctls_wait(fd, error, deadline);
            if (ready == 1) { continue; }
            if (ready == 0) { return CTLS_WOULD_BLOCK; }
            snprintf(reason, reason_size, "poll failed: %s", strerror(errno));
            return CTLS_FAILED;
        }
        if (error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
            snprintf(reason, reason_size, "%s", errno != 0 ? strerror(errno) : "the server closed the connection");
            return CTLS_FAILED;
        }
        ctls_take_error("", reason, reason_size);
        return CTLS_FAILED;
    }
    return 0;
}

/// One line to standard error (Swift 6 cannot touch C's `stderr` global).
static inline void ctls_warn(const char *line) { fputs(line, stderr); }

/// The negotiated protocol ("TLSv1.3") for logs and tests.
static inline const char *ctls_protocol(const SSL *session) { return SSL_get_version(session); }

// MARK: AES-256-GCM, for session values at rest

/// Fills `out` with `length` bytes (at most 64) from OpenSSL's CSPRNG; 0 on success.
///
/// Each thread draws 1,024 bytes at a time and hands them out in order, never twice: one `RAND_bytes` call cost
/// more than the encryption of a small value, and a nonce needs only to be unpredictable and never repeat.
static inline int crsess_random(unsigned char *out, int length) {
    static _Thread_local unsigned char pool[1024];
    static _Thread_local int used = (int)sizeof(pool);
    if (length < 0 || length > 64) return -1;
    if (used + length > (int)sizeof(pool)) {
        if (RAND_bytes(pool, (int)sizeof(pool)) != 1) {
            ERR_clear_error();
            return -1;
        }
        used = 0;
    }
    memcpy(out, pool + used, (size_t)length);
    OPENSSL_cleanse(pool + used, (size_t)length);
    used += length;
    return 0;
}

/// AES-256-GCM, fetched from the default provider once: the implicit fetch of `EVP_aes_256_gcm()` on every
/// initialisation cost more than the encryption of a small value.
static inline EVP_CIPHER *crsess_gcm(void) {
    static EVP_CIPHER *_Atomic cached = NULL;
    EVP_CIPHER *cipher = atomic_load(&cached);
    if (cipher != NULL) return cipher;
    EVP_CIPHER *fetched = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    EVP_CIPHER *expected = NULL;
    if (fetched != NULL && !atomic_compare_exchange_strong(&cached, &expected, fetched)) {
        EVP_CIPHER_free(fetched);
        return expected;
    }
    return fetched;
}

/// One thread's context for one direction, keeping the key schedule of the last key it used: a value costs a new
/// nonce, not a new context and key expansion.
typedef struct {
    EVP_CIPHER_CTX *context;
    unsigned char key[32];
    int keyed;
} crsess_gcm_state;

/// Readies `state` for `key` and `nonce`: the key is set up only when it changed.
static inline int crsess_gcm_ready(crsess_gcm_state *state, int encrypt, const unsigned char *key,
                                   const unsigned char *nonce) {
    EVP_CIPHER *cipher = crsess_gcm();
    if (cipher == NULL) return 0;
    if (state->context == NULL) {
        state->context = EVP_CIPHER_CTX_new();
        if (state->context == NULL) return 0;
        state->keyed = 0;
    }
    if (!state->keyed || memcmp(state->key, key, 32) != 0) {
        if (EVP_CipherInit_ex2(state->context, cipher, key, NULL, encrypt, NULL) != 1) {
            state->keyed = 0;
            return 0;
        }
        memcpy(state->key, key, 32);
        state->keyed = 1;
    }
    // GCM's default nonce is the 12 bytes used here; only the nonce changes per value.
    return EVP_CipherInit_ex2(state->context, NULL, NULL, nonce, encrypt, NULL) == 1;
}

/// Encrypts `plain` with a 32-byte `key` and a 12-byte `nonce`, authenticating `aad` too. Writes the ciphertext and
/// then the 16-byte tag to `out`, which holds `plain_length + 16` bytes. Returns the bytes written, or -1.
static inline int crsess_seal(
    const unsigned char *key, const unsigned char *nonce, const unsigned char *aad, int aad_length,
    const unsigned char *plain, int plain_length, unsigned char *out) {
    // Function-local: a header's file-scope statics are not emitted into the Swift modules that import it.
    static _Thread_local crsess_gcm_state sealing;
    crsess_gcm_state *state = &sealing;
    int length = 0, total = 0;
    int ok = crsess_gcm_ready(state, 1, key, nonce);
    if (ok && aad_length > 0) ok = EVP_EncryptUpdate(state->context, NULL, &length, aad, aad_length) == 1;
    if (ok && plain_length > 0) {
        ok = EVP_EncryptUpdate(state->context, out, &length, plain, plain_length) == 1;
        total = length;
    }
    if (ok) {
        ok = EVP_EncryptFinal_ex(state->context, out + total, &length) == 1;
        total += length;
    }
    if (ok) ok = EVP_CIPHER_CTX_ctrl(state->context, EVP_CTRL_GCM_GET_TAG, 16, out + total) == 1;
    if (!ok) {
        state->keyed = 0;
        ERR_clear_error();
    }
    return ok ? total + 16 : -1;
}

/// Decrypts what `crsess_seal` wrote (`sealed`: ciphertext, then the 16-byte tag) into `out`, which holds
/// `sealed_length - 16` bytes. Returns the plaintext's length, or -1 when the tag does not match: a wrong key, a
/// wrong `aad`, or any changed byte.
static inline int crsess_open(
    const unsigned char *key, const unsigned char *nonce, const unsigned char *aad, int aad_length,
    const unsigned char *sealed, int sealed_length, unsigned char *out) {
    if (sealed_length < 16) return -1;
    int cipher_length = sealed_length - 16;
    static _Thread_local crsess_gcm_state opening;
    crsess_gcm_state *state = &opening;
    int length = 0, total = 0;
    int ok = crsess_gcm_ready(state, 0, key, nonce);
    if (ok && aad_length > 0) ok = EVP_DecryptUpdate(state->context, NULL, &length, aad, aad_length) == 1;
    if (ok && cipher_length > 0) {
        ok = EVP_DecryptUpdate(state->context, out, &length, sealed, cipher_length) == 1;
        total = length;
    }
    if (ok) ok = EVP_CIPHER_CTX_ctrl(state->context, EVP_CTRL_GCM_SET_TAG, 16, (void *)(sealed + cipher_length)) == 1;
    if (ok) {
        ok = EVP_DecryptFinal_ex(state->context, out + total, &length) == 1;
        total += length;
    }
    if (!ok) {
        // A failed tag leaves the context mid-operation: the next value starts from a fresh key set-up.
        state->keyed = 0;
        ERR_clear_error();
    }
    return ok ? total : -1;
}

#endif

import RedisClient

/// Limits password guesses, shared by every instance through Redis.
///
/// Each attempt is *taken* before the password is checked, in one script, so parallel guesses cannot slip past the
/// count (the attack on the rig got 13-17 bcrypt checks through where 5 were allowed):
/// - **Per account and client**: the first `freeAttempts` failures cost nothing; after that each attempt must wait
///   `baseDelay`, doubling up to `maximumDelay`. The pair is what backs off, so a stranger who guesses alice's password
///   slows only their own guesses, never alice on her own device.
/// - **Per client**: at most `clientLimit` attempts in `window`, whatever the accounts, so one client cannot spray
///   many accounts; a successful login gives its attempt back.
/// - Every counter expires, and a throttled attempt creates nothing, so a flood leaves at most `clientLimit` pair keys
///   per client and window.
struct LoginLimiter: Sendable {
    /// Failures per account and client before backing off.
    var freeAttempts: Int
    /// The first back-off step; each further failure doubles it.
    var baseDelay: Duration = .seconds(1)
    /// The longest back-off.
    var maximumDelay: Duration
    /// Attempts one client may make in ``window``, across accounts.
    var clientLimit: Int = 30
    /// The window of the per-client count.
    var window: Duration

    let client: RedisClient
    let keyPrefix: String

    /// The outcome of taking an attempt.
    enum Decision: Sendable, Equatable {
        /// Check the password.
        case proceed
        /// Do not check it; answer 429, retry after this many seconds.
        case wait(seconds: Int)
    }

    // Both keys carry the client address as their hash tag, so the one script that takes an attempt touches one slot
    // on a Redis Cluster (the pair counter is per client anyway). Braces in an address cannot move the tag: they are
    // replaced, since a tag ends at the first `}`.
    private func tag(_ address: String) -> String {
        "{" + String(address.map { $0 == "{" ? "(" : $0 == "}" ? ")" : $0 }) + "}"
    }
    private func pairKey(_ account: String, _ address: String) -> String {
        keyPrefix + "login:pair:" + tag(address) + account
    }
    private func clientKey(_ address: String) -> String { keyPrefix + "login:client:" + tag(address) }

    /// Takes one attempt for `account` from `address`.
    ///
    /// - Throws: The Redis error when the attempt could not be recorded; the caller must fail closed.
    func take(account: String, address: String) async throws -> Decision {
        let reply = try await client.evaluate(
            Self.takeScript, keys: [pairKey(account, address), clientKey(address)],
            arguments: [
                freeAttempts, Int64(baseDelay / .milliseconds(1)), Int64(maximumDelay / .milliseconds(1)),
                clientLimit, Int64(window / .milliseconds(1)),
            ])
        guard let values = reply.array, values.count == 2, let allowed = values[0].int, let detail = values[1].int
        else {
            throw RedisError(.unexpectedReply, "the login limiter answered \(reply)", context: "login limiter")
        }
        return allowed == 1 ? .proceed : .wait(seconds: max(1, (detail + 999) / 1000))
    }

    /// A successful login: the pair starts over and the client gets its attempt back.
    func succeeded(account: String, address: String) async throws {
        try await client.evaluate(Self.releaseScript, keys: [pairKey(account, address), clientKey(address)])
    }

    /// KEYS[1] pair hash {n, next}, KEYS[2] client counter. ARGV: free attempts, base ms, maximum ms, client limit,
    /// window ms. Returns {1, n} to proceed, {0, wait ms} when throttled (then nothing is written).
    static let takeScript = RedisScript(
        """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local nextAllowed = tonumber(redis.call('HGET', KEYS[1], 'next') or '0')
        if now < nextAllowed then return {0, nextAllowed - now} end
        local attempts = tonumber(redis.call('GET', KEYS[2]) or '0')
        if attempts >= tonumber(ARGV[4]) then return {0, math.max(redis.call('PTTL', KEYS[2]), 1000)} end
        local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
        local delay = 0
        if n >= tonumber(ARGV[1]) then
          delay = math.floor(math.min(tonumber(ARGV[2]) * 2 ^ (n - tonumber(ARGV[1])), tonumber(ARGV[3])))
        end
        redis.call('HSET', KEYS[1], 'next', now + delay)
        redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + tonumber(ARGV[5]))
        redis.call('INCR', KEYS[2])
        if redis.call('PTTL', KEYS[2]) < 0 then redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[5])) end
        return {1, n}
        """)

    /// KEYS[1] pair, KEYS[2] client counter.
    static let releaseScript = RedisScript(
        """
        redis.call('DEL', KEYS[1])
        if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
        return 1
        """)
}

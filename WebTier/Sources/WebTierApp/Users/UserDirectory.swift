import Foundation
import HummingbirdBcrypt
import NIOPosix
import RedisClient
import RedisSession

/// Accounts in Redis, so every instance sees the same users: hash `<prefix>account:<username>` with the bcrypt
/// password hash. The user's timezone lives in the settings record (``UserSettingsStore``), the cache's source of
/// truth.
struct UserDirectory: Sendable {
    let client: RedisClient
    let settings: UserSettingsStore
    let keyPrefix: String
    let bcryptCost: UInt8
    let failureLimit: Int
    let failureWindow: Duration

    /// The outcome of a login attempt.
    enum Verdict: Sendable, Equatable {
        case accepted(userID: String)
        case rejected
        /// Too many failures for this account; retry after this many seconds.
        case throttled(retryAfter: Int)
    }

    /// A bcrypt hash to verify against for unknown users, so "no such user" and "wrong password" take as long.
    /// Read only inside the thread-pool closure below: its first use computes it, which is bcrypt work too.
    private static let decoyHash = Bcrypt.hash("decoy password", cost: 10)

    private func accountKey(_ username: String) -> String { keyPrefix + "account:" + username }
    private func failureKey(_ username: String) -> String { keyPrefix + "login-failures:" + username }

    /// Normalises a submitted user name; `nil` when it cannot be one (so it never reaches a key name).
    static func normalise(_ username: String) -> String? {
        let lowered = username.trimmingCharacters(in: .whitespaces).lowercased()
        guard (1...64).contains(lowered.count),
            lowered.unicodeScalars.allSatisfy({
                ("a"..."z").contains($0) || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0)
            })
        else { return nil }
        return lowered
    }

    /// Checks credentials, counting failures per account in Redis (shared by every instance).
    func verify(username rawUsername: String, password: String) async throws -> Verdict {
        guard let username = Self.normalise(rawUsername), !password.isEmpty, password.utf8.count <= 256 else {
            return .rejected
        }
        let state = try await client.pipeline([
            RedisCommand("GET", failureKey(username)), RedisCommand("PTTL", failureKey(username)),
            RedisCommand("HGET", accountKey(username), "password"),
        ])
        let failures = state[0].int ?? 0
        if failures >= failureLimit {
            let milliseconds = max(1000, state[1].int ?? 1000)
            return .throttled(retryAfter: (milliseconds + 999) / 1000)
        }
        let storedHash = state[2].string
        // bcrypt is deliberately slow CPU work: keep it off the Swift cooperative pool.
        let matches = try await NIOThreadPool.singleton.runIfActive {
            Bcrypt.verify(password, hash: storedHash ?? Self.decoyHash)
        }
        if matches && storedHash != nil {
            try await client.send("DEL", failureKey(username))
            return .accepted(userID: username)
        }
        _ = try await client.pipeline([
            RedisCommand("INCR", failureKey(username)),
            RedisCommand("PEXPIRE", failureKey(username), Int(failureWindow.components.seconds * 1000), "NX"),
        ])
        return .rejected
    }

    /// Creates an account with its settings record unless it exists. Returns whether it was created.
    @discardableResult
    func createIfAbsent(username: String, password: String, timezone: String) async throws -> Bool {
        guard let username = Self.normalise(username) else { return false }
        let cost = bcryptCost
        let hash = try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(password, cost: cost) }
        let created = try await client.send("HSETNX", accountKey(username), "password", hash).int == 1
        if try await settings.read(userID: username) == nil {
            _ = try await settings.write(
                userID: username, timezone: timezone, publishing: nil, origin: "seed", channel: "")
        }
        return created
    }

    /// The demo users the README lists.
    static let demoUsers = [
        (username: "alice", password: "wonderland", timezone: "Europe/Paris"),
        (username: "bob", password: "builder", timezone: "America/New_York"),
    ]

    func seedDemoUsers() async throws {
        for user in Self.demoUsers {
            try await createIfAbsent(username: user.username, password: user.password, timezone: user.timezone)
        }
    }
}

import Foundation
import HummingbirdBcrypt
import Logging
import NIOPosix
import RedisClient
import RedisSession
import SettingsSync

/// Accounts in Redis, so every instance sees the same users: hash `<prefix>account:<username>` with the bcrypt
/// password hash. The user's timezone lives in the settings record (``UserSettingsStore``), the cache's source of
/// truth.
struct UserDirectory: Sendable {
    let client: RedisClient
    let settings: UserSettingsStore
    let keyPrefix: String
    let bcryptCost: UInt8
    /// Password guesses, limited per account and client and per client (``LoginLimiter``).
    let limiter: LoginLimiter

    init(
        client: RedisClient, settings: UserSettingsStore, keyPrefix: String, bcryptCost: UInt8, failureLimit: Int,
        failureWindow: Duration
    ) {
        self.client = client
        self.settings = settings
        self.keyPrefix = keyPrefix
        self.bcryptCost = bcryptCost
        self.limiter = LoginLimiter(
            freeAttempts: failureLimit, maximumDelay: failureWindow, window: failureWindow, client: client,
            keyPrefix: keyPrefix)
    }

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

    /// Checks credentials, taking the attempt from the ``LoginLimiter`` first.
    ///
    /// Fails closed: when Redis cannot record the attempt or read the account, the answer is ``Verdict/rejected``
    /// after a bcrypt check's worth of work, exactly as for a wrong password, and the failure is logged. (The attack
    /// on the rig found the opposite: a Redis at `maxmemory` refused the counter, guessing was unlimited, and the right
    /// password answered 503 where a wrong one answered 401.)
    ///
    /// - Parameters:
    ///   - address: The client's address, for the per-client limits.
    func verify(username rawUsername: String, password: String, address: String, logger: Logger) async -> Verdict {
        guard let username = Self.normalise(rawUsername), !password.isEmpty, password.utf8.count <= 256 else {
            return .rejected
        }
        let storedHash: String?
        do {
            switch try await limiter.take(account: username, address: address) {
            case .wait(let seconds): return .throttled(retryAfter: seconds)
            case .proceed: break
            }
            storedHash = try await client.send("HGET", accountKey(username), "password").string
        } catch {
            logger.error(
                "login refused: the attempt could not be recorded, so no password is checked",
                metadata: ["rsess.user": "\(username)", "rsess.error": "\(error)"])
            _ = try? await checkPassword(password, against: nil)  // the time a wrong password takes
            return .rejected
        }
        let matches = (try? await checkPassword(password, against: storedHash)) ?? false
        guard matches && storedHash != nil else { return .rejected }
        do {
            try await limiter.succeeded(account: username, address: address)
        } catch {
            logger.warning("login: the limiter was not reset", metadata: ["rsess.error": "\(error)"])
        }
        return .accepted(userID: username)
    }

    /// bcrypt is deliberately slow CPU work: it runs on NIO's thread pool, never on the Swift cooperative pool. An
    /// unknown user is checked against a decoy hash, so "no such user" and "wrong password" take as long.
    private func checkPassword(_ password: String, against storedHash: String?) async throws -> Bool {
        try await NIOThreadPool.singleton.runIfActive { Bcrypt.verify(password, hash: storedHash ?? Self.decoyHash) }
    }

    /// Creates an account with its settings record unless it exists. Returns whether it was created.
    @discardableResult
    func createIfAbsent(username: String, password: String, timezone: String) async throws -> Bool {
        guard let username = Self.normalise(username) else { return false }
        let cost = bcryptCost
        let hash = try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(password, cost: cost) }
        let created = try await client.send("HSETNX", accountKey(username), "password", hash).int == 1
        if try await settings.read(userID: username) == nil {
            _ = try await settings.write(userID: username, timezone: timezone, announcing: nil)
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

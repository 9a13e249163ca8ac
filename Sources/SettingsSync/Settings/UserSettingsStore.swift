public import RedisClient
public import RedisSession

/// Reads and writes users' settings records in Redis: hash `<prefix>user:{T}<id>` (`SessionKeys.settings(_:)`,
/// in the user's slot) with `timezone` and `version`.
public struct UserSettingsStore: Sendable {
    /// The pool to use.
    public let client: RedisClient
    /// The deployment's key prefix.
    public let keyPrefix: String

    /// Creates a settings store.
    public init(client: RedisClient, keyPrefix: String = "rsess:") {
        self.client = client
        self.keyPrefix = keyPrefix
    }

    func key(_ userID: String) -> String { SessionKeys(prefix: keyPrefix).settings(userID) }

    /// The user's settings, or `nil` when the user has none.
    public func read(userID: String) async throws(SettingsError) -> UserSettings? {
        let reply: RedisValue
        do {
            reply = try await client.send("HMGET", key(userID), "timezone", "version")
        } catch {
            throw Self.settingsError(error, "cannot read user settings")
        }
        guard let fields = reply.array, fields.count == 2 else {
            throw SettingsError(.corruptRecord, "unexpected reply reading user settings")
        }
        guard let timezone = fields[0].string else { return try await adoptLegacyRecord(userID: userID) }
        return UserSettings(timezone: timezone, version: fields[1].int ?? 0)
    }

    /// Key layout v1 kept the record at `<prefix>user:<id>`, outside the user's slot. A user's first read after the
    /// upgrade moves it into place (keeping its version, so no instance's cache sees versions go backwards); a user
    /// with no record costs this one extra read. A user ID starting with `{` is never looked up there: its v1 name
    /// could be another user's v2 record.
    private func adoptLegacyRecord(userID: String) async throws(SettingsError) -> UserSettings? {
        guard !userID.hasPrefix("{") else { return nil }
        let legacy = keyPrefix + "user:" + userID
        do throws(RedisError) {
            let fields = try await client.send("HMGET", legacy, "timezone", "version").array ?? []
            guard fields.count == 2, let timezone = fields[0].string else { return nil }
            let adopted = try await client.evaluate(
                Self.adoptScript, keys: [key(userID)], arguments: [timezone, fields[1].int ?? 0])
            _ = try await client.send("DEL", legacy)
            guard let values = adopted.array, values.count == 2, let current = values[0].string else { return nil }
            return UserSettings(timezone: current, version: values[1].int ?? 0)
        } catch {
            throw Self.settingsError(error, "cannot read user settings")
        }
    }

    /// A key of another Redis type where the record should be is a record this library did not write; anything else
    /// means Redis could not answer.
    private static func settingsError(_ error: RedisError, _ message: String) -> SettingsError {
        let code: SettingsErrorCode = error.serverErrorPrefix == "WRONGTYPE" ? .corruptRecord : .storeUnavailable
        return SettingsError(code, message, underlying: error)
    }

    /// KEYS[1] settings. ARGV: timezone, version of the v1 record. Writes them unless a record exists (a write that
    /// raced the adoption wins), and returns {timezone, version} as stored.
    static let adoptScript = RedisScript(
        """
        if redis.call('EXISTS', KEYS[1]) == 0 then
          redis.call('HSET', KEYS[1], 'timezone', ARGV[1], 'version', ARGV[2])
        end
        return redis.call('HMGET', KEYS[1], 'timezone', 'version')
        """)

    /// Sets the timezone and bumps the version in one atomic step; with an announcement, publishes its event in
    /// the same step, carrying the new version: the event goes out if and only if the write happened.
    ///
    /// - Parameters:
    ///   - userID: The user.
    ///   - timezone: A timezone identifier (validate it first: ``UserSettings/isValidTimezone(_:)``).
    ///   - announcement: The event to publish with the write (``SessionEventBus/announcement(_:user:timezone:origin:)``),
    ///     or `nil` to publish none (seeding).
    /// - Returns: The settings as written.
    public func write(
        userID: String, timezone: String, announcing announcement: SessionEventBus.Announcement?
    ) async throws(SettingsError) -> UserSettings {
        let reply: RedisValue
        do {
            reply = try await client.evaluate(
                Self.writeScript, keys: [key(userID)],
                arguments: [
                    timezone, announcement?.head ?? [], announcement?.tail ?? [], announcement?.channel ?? "",
                ])
        } catch {
            throw Self.settingsError(error, "cannot write user settings")
        }
        guard let version = reply.int else { throw SettingsError(.corruptRecord, "unexpected reply \(reply)") }
        return UserSettings(timezone: timezone, version: version)
    }

    /// KEYS[1] settings. ARGV: timezone, the event's payload before and after its version, channel ('' for none).
    /// The payload is ``SessionEvent/encoded()``'s, with the version only the script knows.
    static let writeScript = RedisScript(
        """
        local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
        redis.call('HSET', KEYS[1], 'timezone', ARGV[1])
        if ARGV[4] ~= '' then
          redis.call('PUBLISH', ARGV[4], ARGV[2] .. string.format('%d', version) .. ARGV[3])
        end
        return version
        """)
}

public import Foundation
import RedisClient
import Synchronization

/// Sessions in process memory, with the same semantics as ``RedisSessionStore``: for application unit tests and
/// single-process tools. Not shared between instances, not persistent.
///
/// The clock can be injected so tests can move time instead of sleeping.
public final class MemorySessionStore: SessionStore {
    private struct Record {
        var userID: String?
        var createdAt: Date
        var touchedAt: Date
        var expiresAt: Date
        var version: Int
        var attributes: [String: [UInt8]]
        var labels: [String: String]
    }

    /// Key prefix, timeouts and limits (the prefix is unused).
    public let configuration: SessionStoreConfiguration
    private let clock: @Sendable () -> Date
    /// Keyed by ``SessionID/storageName``, as Redis is: the store holds no session ID.
    private let records = Mutex<[String: Record]>([:])

    /// Creates an empty store.
    ///
    /// - Parameters:
    ///   - configuration: Timeouts and limits.
    ///   - now: The clock; defaults to the system clock.
    public init(
        configuration: SessionStoreConfiguration = SessionStoreConfiguration(),
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.configuration = configuration
        self.clock = now
    }

    private var idle: TimeInterval { Double(configuration.idleTimeout.wholeMilliseconds) / 1000 }
    private var absolute: TimeInterval { Double(configuration.absoluteLifetime.wholeMilliseconds) / 1000 }

    private func expiry(created: Date, now: Date) -> Date {
        min(now.addingTimeInterval(idle), created.addingTimeInterval(absolute))
    }

    /// Drops expired records; call with the lock held.
    private func live(_ records: inout [String: Record], _ name: String, now: Date) -> Record? {
        guard let record = records[name] else { return nil }
        if record.expiresAt <= now {
            records[name] = nil
            return nil
        }
        return record
    }

    public func create(
        userID: String?, attributes: [String: String], labels: [String: String]
    ) async throws(SessionError) -> Session {
        let now = clock()
        var session = Session(
            id: userID.map(SessionID.init(userID:)) ?? SessionID(), userID: userID, createdAt: now, lastSeenAt: now,
            version: 1, attributes: [:], labels: labels)
        for (key, value) in attributes { session[key] = value }
        try configuration.checkLimits(count: session.attributes.count, bytes: session.encodedSize)
        let record = Record(
            userID: userID, createdAt: now, touchedAt: now, expiresAt: expiry(created: now, now: now), version: 1,
            attributes: session.attributes, labels: labels)
        records.withLock { $0[session.id.storageName] = record }
        session.markSaved(version: 1)
        return session
    }

    public func load(id: SessionID) async throws(SessionError) -> Session? {
        loadFromMemory(id: id)
    }

    /// The session, as ``load(id:)`` reads it: everything this store holds is in memory. `nil` for an unknown,
    /// expired or destroyed session.
    public func loadFromMemory(id: SessionID) -> Session? {
        let now = clock()
        let touch = Double(configuration.touchInterval.wholeMilliseconds) / 1000
        return records.withLock { records -> Session? in
            guard var record = live(&records, id.storageName, now: now) else { return nil }
            if now.timeIntervalSince(record.touchedAt) >= touch {
                record.touchedAt = now
                record.expiresAt = expiry(created: record.createdAt, now: now)
                records[id.storageName] = record
            }
            return Session(
                id: id, userID: record.userID, createdAt: record.createdAt, lastSeenAt: record.touchedAt,
                version: record.version, attributes: record.attributes, labels: record.labels)
        }
    }

    public func save(_ session: inout Session) async throws(SessionError) {
        guard session.hasChanges else { return }
        try commit(&session, regenerating: false)
    }

    public func regenerate(_ session: inout Session) async throws(SessionError) {
        try commit(&session, regenerating: true)
    }

    private func commit(_ session: inout Session, regenerating: Bool) throws(SessionError) {
        let now = clock()
        let snapshot = session
        // As in Redis: a change of user moves the session to an ID tagged for the new user.
        let newID: SessionID? =
            if snapshot.changesUser {
                snapshot.userID.map(SessionID.init(userID:)) ?? SessionID()
            } else if regenerating {
                SessionID(tag: snapshot.id.tag)
            } else {
                nil
            }
        let record = try records.withLock { records throws(SessionError) -> Record in
            guard var record = live(&records, snapshot.id.storageName, now: now) else {
                throw SessionError(.sessionNotFound, "session does not exist")
            }
            var attributes = record.attributes
            for key in snapshot.changedKeys { attributes[key] = snapshot.attributes[key] ?? [] }
            for key in snapshot.removedKeys { attributes[key] = nil }
            try configuration.checkLimits(
                count: attributes.count, bytes: attributes.reduce(0) { $0 + $1.key.utf8.count + $1.value.count })
            record.attributes = attributes
            if snapshot.labelsChanged { record.labels = snapshot.labels }
            if snapshot.userChanged { record.userID = snapshot.userID }
            record.version += 1
            record.touchedAt = now
            record.expiresAt = expiry(created: record.createdAt, now: now)
            records[snapshot.id.storageName] = nil
            records[(newID ?? snapshot.id).storageName] = record
            return record
        }
        if let newID { session.id = newID }
        session.attributes = record.attributes
        session.labels = record.labels
        session.createdAt = record.createdAt
        session.lastSeenAt = now
        session.markSaved(version: record.version)
    }

    public func destroy(id: SessionID) async throws(SessionError) {
        _ = records.withLock { $0.removeValue(forKey: id.storageName) }
    }

    @discardableResult
    public func destroy(handle: SessionHandle, userID: String) async throws(SessionError) -> Bool {
        let now = clock()
        let name = SessionKeys.storageName(handle, userID: userID)
        return records.withLock { records in
            guard let record = live(&records, name, now: now), record.userID == userID else { return false }
            records[name] = nil
            return true
        }
    }

    public func sessions(userID: String) async throws(SessionError) -> [SessionSummary] {
        let now = clock()
        return records.withLock { records in
            records = records.filter { $0.value.expiresAt > now }
            return records.filter { $0.value.userID == userID }
                .map {
                    SessionSummary(
                        handle: SessionHandle(validated: String($0.key.dropFirst(SessionID.tagLength + 2))),
                        labels: $0.value.labels, createdAt: $0.value.createdAt, lastSeenAt: $0.value.touchedAt,
                        expiresAt: $0.value.expiresAt)
                }
                .sorted { ($0.createdAt, $0.handle.text) < ($1.createdAt, $1.handle.text) }
        }
    }

    @discardableResult
    public func destroyAll(userID: String) async throws(SessionError) -> Int {
        let now = clock()
        return records.withLock { records in
            let doomed = records.filter { $0.value.userID == userID }
            for name in doomed.keys { records[name] = nil }
            return doomed.values.filter { $0.expiresAt > now }.count
        }
    }
}

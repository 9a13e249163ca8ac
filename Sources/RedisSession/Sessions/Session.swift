public import Foundation

/// One visitor's session: metadata plus attributes, each a JSON-encoded value under a string key.
///
/// A `Session` is a value. Changes are tracked per attribute, so ``SessionStore/save(_:)`` writes only what
/// changed and removes only what was removed: two requests that change different attributes of one session
/// concurrently both keep their change.
///
/// ```swift
/// var session = try await store.create(userID: "alice")
/// session["timezone"] = "Europe/Paris"
/// try session.set("cart", Cart(items: 3))
/// try await store.save(&session)
/// let cart = try session.get("cart", as: Cart.self)
/// ```
public struct Session: Sendable {
    /// The session's ID (the cookie value).
    public internal(set) var id: SessionID
    /// The signed-in user, or `nil` for an anonymous session.
    ///
    /// Changing it gives the session a new ID on the next save or regenerate (the ID's slot tag follows the user),
    /// so set the cookie from ``id`` afterwards.
    public var userID: String? {
        didSet { if userID != oldValue { userChanged = true } }
    }
    /// What the application recorded about the device, for the user's list of sessions: for example
    /// `["agent": "Firefox on Linux", "address": "203.0.113.7"]`. Saved like attributes; kept across a change of
    /// user.
    public var labels: [String: String] {
        didSet {
            guard labels != oldValue else { return }
            labelsChanged = true
            removedLabels.formUnion(Set(oldValue.keys).subtracting(labels.keys))
            removedLabels.subtract(labels.keys)
        }
    }
    /// When the session was created (server time).
    public internal(set) var createdAt: Date
    /// When the session was last seen (server time, precise to the store's touch interval).
    public internal(set) var lastSeenAt: Date
    /// How many saves the stored session has seen.
    public internal(set) var version: Int

    var attributes: [String: [UInt8]]
    var changedKeys: Set<String> = []
    var removedKeys: Set<String> = []
    var userChanged = false
    var labelsChanged = false
    var removedLabels: Set<String> = []
    /// The user as stored: the one whose slot and index the session is in until a save moves it.
    var storedUserID: String?

    init(
        id: SessionID, userID: String?, createdAt: Date, lastSeenAt: Date, version: Int,
        attributes: [String: [UInt8]], labels: [String: String] = [:]
    ) {
        self.id = id
        self.userID = userID
        self.storedUserID = userID
        self.labels = labels
        self.createdAt = createdAt
        self.lastSeenAt = lastSeenAt
        self.version = version
        self.attributes = attributes
    }

    /// The attribute keys.
    public var keys: [String] { attributes.keys.sorted() }

    /// Whether the session has changes that are not saved yet.
    public var hasChanges: Bool { !changedKeys.isEmpty || !removedKeys.isEmpty || userChanged || labelsChanged }

    /// Whether the next save moves the session to another user (a new ID in that user's slot).
    var changesUser: Bool { userChanged && userID != storedUserID }

    /// Reads an attribute.
    ///
    /// - Parameters:
    ///   - key: The attribute key.
    ///   - type: The type to decode.
    /// - Returns: The value, or `nil` when the attribute is absent.
    /// - Throws: ``SessionErrorCode/invalidValue`` when the stored JSON is not a `T`.
    public func get<T: Decodable>(_ key: String, as type: T.Type = T.self) throws(SessionError) -> T? {
        guard let bytes = attributes[key] else { return nil }
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch {
            throw SessionError(.invalidValue, "attribute '\(key)' is not a \(T.self): \(error)")
        }
    }

    /// Sets an attribute to a JSON-encodable value.
    ///
    /// - Throws: ``SessionErrorCode/invalidValue`` when the value cannot be encoded.
    public mutating func set<T: Encodable>(_ key: String, _ value: T) throws(SessionError) {
        let bytes: [UInt8]
        do {
            bytes = Array(try JSONEncoder().encode(value))
        } catch {
            throw SessionError(.invalidValue, "attribute '\(key)' cannot be encoded: \(error)")
        }
        setEncoded(key, bytes)
    }

    /// Removes an attribute.
    public mutating func remove(_ key: String) {
        guard attributes.removeValue(forKey: key) != nil || changedKeys.contains(key) else { return }
        changedKeys.remove(key)
        removedKeys.insert(key)
    }

    /// A string attribute, the common case (`session["timezone"]`). Setting `nil` removes it. Reading an attribute
    /// that holds something other than a JSON string gives `nil`.
    public subscript(key: String) -> String? {
        get {
            guard let bytes = attributes[key] else { return nil }
            return JSONString.decode(bytes) ?? (try? get(key, as: String.self))
        }
        set {
            if let newValue {
                setEncoded(key, JSONString.encode(newValue))
            } else {
                remove(key)
            }
        }
    }

    mutating func setEncoded(_ key: String, _ bytes: [UInt8]) {
        if attributes[key] == bytes && !removedKeys.contains(key) { return }
        attributes[key] = bytes
        changedKeys.insert(key)
        removedKeys.remove(key)
    }

    /// Marks everything as saved.
    mutating func markSaved(version: Int) {
        self.version = version
        changedKeys.removeAll()
        removedKeys.removeAll()
        userChanged = false
        labelsChanged = false
        removedLabels.removeAll()
        storedUserID = userID
    }

    /// Marks every attribute and label as changed, so the next save writes them all (under the current encryption
    /// key, and for the name the session is stored under then).
    mutating func markEverythingChanged() {
        changedKeys = Set(attributes.keys)
        labelsChanged = true
    }

    /// The encoded size the limits apply to: attribute names plus values.
    var encodedSize: Int { attributes.reduce(0) { $0 + $1.key.utf8.count + $1.value.count } }
}

/// What ``SessionStore/sessions(userID:)`` lists: one live session of a user, named by its handle, never its ID.
public struct SessionSummary: Sendable, Hashable {
    /// The session's opaque handle, for ``SessionStore/destroy(handle:userID:)``; compare it with
    /// ``SessionID/handle`` of the current session to mark "this device".
    public var handle: SessionHandle
    /// What the application recorded about the device (``Session/labels``).
    public var labels: [String: String]
    /// When it was created.
    public var createdAt: Date
    /// When it was last seen (precise to the store's touch interval).
    public var lastSeenAt: Date
    /// When it expires if it stays idle (never later than its absolute lifetime allows).
    public var expiresAt: Date

    /// Creates a summary.
    public init(handle: SessionHandle, labels: [String: String], createdAt: Date, lastSeenAt: Date, expiresAt: Date) {
        self.handle = handle
        self.labels = labels
        self.createdAt = createdAt
        self.lastSeenAt = lastSeenAt
        self.expiresAt = expiresAt
    }
}

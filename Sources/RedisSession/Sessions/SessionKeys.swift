/// Every Redis key name the component writes, in one place (key layout v2).
///
/// | key | holds |
/// | --- | --- |
/// | `<prefix>s:{T}<H>` | a session hash: `T` the ID's slot tag, `H` the base64url SHA-256 of the ID |
/// | `<prefix>u:{T}<user>` | the user's index: a sorted set of `H`, scored by each session's absolute expiry |
/// | `<prefix>user:{T}<user>` | the user's settings record (`UserSettingsStore`, in SettingsSync) |
///
/// `{T}` is a Redis Cluster hash tag: for a user it is ``SessionID/tag(forUser:)``, so a signed-in user's
/// sessions, index and settings share one hash slot, and every script and transaction of the store touches one
/// slot. No key and no index member holds a session ID.
public struct SessionKeys: Sendable, Hashable {
    /// The deployment's key prefix; it never contains `{` or `}`, which would move the hash tag.
    public let prefix: String

    /// Keys under `prefix`.
    ///
    /// - Precondition: `prefix` contains neither `{` nor `}`.
    public init(prefix: String) {
        precondition(Self.isValidPrefix(prefix), "a key prefix cannot contain '{' or '}': it would move the hash tag")
        self.prefix = prefix
    }

    /// Whether `prefix` can be a key prefix: it must not contain `{` or `}`.
    public static func isValidPrefix(_ prefix: String) -> Bool {
        !prefix.utf8.contains(UInt8(ascii: "{")) && !prefix.utf8.contains(UInt8(ascii: "}"))
    }

    /// The prefix every session key starts with, which the session cache tracks.
    public var sessionPrefix: String { prefix + "s:" }

    /// The session hash of `id`.
    public func session(_ id: SessionID) -> String { sessionPrefix + id.storageName }

    /// The session hash that `handle` names among `userID`'s sessions.
    public func session(_ handle: SessionHandle, userID: String) -> String {
        sessionPrefix + Self.storageName(handle, userID: userID)
    }

    /// The session hash that a member of `userID`'s index names, whatever the member holds: a member that is not a
    /// handle this store wrote names a hash nothing can load.
    func session(indexMember member: String, userID: String) -> String {
        sessionPrefix + "{" + SessionID.tag(forUser: userID) + "}" + member
    }

    /// The name a session of `userID` is stored under (after the prefix), as ``SessionID/storageName`` gives it for
    /// the ID itself.
    public static func storageName(_ handle: SessionHandle, userID: String) -> String {
        "{" + SessionID.tag(forUser: userID) + "}" + handle.text
    }

    /// The user's index of sessions.
    public func userIndex(_ userID: String) -> String { prefix + "u:{" + SessionID.tag(forUser: userID) + "}" + userID }

    /// The user's settings record.
    public func settings(_ userID: String) -> String {
        prefix + "user:{" + SessionID.tag(forUser: userID) + "}" + userID
    }
}

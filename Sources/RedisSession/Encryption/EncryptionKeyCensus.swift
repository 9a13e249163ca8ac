public import RedisClient

/// How many stored session values each encryption key holds, so an operator knows when an old key can go.
///
/// It walks every session hash under a prefix with `SCAN` (on a cluster, on every primary) and reads the key ID
/// each value carries in the clear: no key is needed to count, and nothing is decrypted. Values stored before
/// encryption count under ``plaintextID``.
///
/// ```swift
/// let counts = try await EncryptionKeyCensus(configuration: try RedisConfiguration(url: url), keyPrefix: "rsess:")
///     .count()                                  // ["2026-12": 1804, "2026-11": 12]
/// ```
///
/// An old key can go once its count is zero, or once every session that could hold it has passed its absolute
/// lifetime since the rotation.
public struct EncryptionKeyCensus: Sendable {
    /// The name under which values that are not encrypted are counted.
    public static let plaintextID = "(plaintext)"

    let configuration: RedisConfiguration
    let keys: SessionKeys

    /// A census of the sessions under `keyPrefix` on the server(s) `configuration` reaches.
    public init(configuration: RedisConfiguration, keyPrefix: String) {
        self.configuration = configuration
        self.keys = SessionKeys(prefix: keyPrefix)
    }

    /// Counts values by key ID, over every session hash.
    ///
    /// - Returns: Key ID → number of stored attribute values and labels.
    /// - Throws: The Redis error when a node cannot be read.
    public func count() async throws(RedisError) -> [String: Int] {
        var nodes: [RedisConfiguration] = [configuration]
        if case .cluster = configuration.topology { nodes = try await primaries() }
        var counts: [String: Int] = [:]
        for node in nodes {
            let client = RedisClient(configuration: node)
            do {
                try await count(on: client, into: &counts)
            } catch {
                await client.close()
                throw error
            }
            await client.close()
        }
        return counts
    }

    private func count(on client: RedisClient, into counts: inout [String: Int]) async throws(RedisError) {
        var cursor = "0"
        repeat {
            let page = try await client.send("SCAN", cursor, "MATCH", keys.sessionPrefix + "*", "COUNT", 1000)
            guard let parts = page.array, parts.count == 2, let next = parts[0].string, let names = parts[1].array
            else {
                throw RedisError(.unexpectedReply, "SCAN answered \(page)", context: "encryption key census")
            }
            cursor = next
            let hashes = try await client.pipeline(names.compactMap(\.string).map { RedisCommand("HGETALL", $0) })
            for hash in hashes {
                guard let fields = hash.array else { continue }  // not a hash: nothing of ours to count
                var index = 0
                while index + 1 < fields.count {
                    defer { index += 2 }
                    guard let name = fields[index].bytes, let value = fields[index + 1].bytes,
                        name.starts(with: Self.attribute) || name.starts(with: Self.label)
                    else { continue }
                    counts[SealedValue.keyID(of: value) ?? Self.plaintextID, default: 0] += 1
                }
            }
        } while cursor != "0"
    }

    /// One standalone configuration per primary of the cluster, with the cluster's TLS and credentials.
    private func primaries() async throws(RedisError) -> [RedisConfiguration] {
        let client = RedisClient(configuration: configuration)
        let reply: RedisValue
        do {
            reply = try await client.send("CLUSTER", "SLOTS")
        } catch {
            await client.close()
            throw error
        }
        await client.close()
        var seen = Set<RedisConfiguration.Endpoint>()
        for range in reply.array ?? [] {
            guard let parts = range.array, parts.count >= 3, let node = parts[2].array, node.count >= 2,
                let host = node[0].string, let port = node[1].int
            else { continue }
            seen.insert(.tcp(host: host, port: port))
        }
        guard !seen.isEmpty else {
            throw RedisError(.unexpectedReply, "CLUSTER SLOTS named no primary", context: "encryption key census")
        }
        return seen.sorted { $0.description < $1.description }.map { configuration.aimed(at: $0) }
    }

    private static let attribute = Array(SessionRecord.attributePrefix.utf8)
    private static let label = Array(SessionRecord.labelPrefix.utf8)
}

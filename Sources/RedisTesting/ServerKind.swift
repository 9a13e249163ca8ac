import Foundation

/// Which server the test processes run: Redis, or Valkey 8 beside it.
///
/// `REDIS_SERVER=valkey` picks Valkey for every ``RedisServer``, ``SentinelSet`` and ``RedisCluster`` a process starts
/// (`valkey-server` from `scripts/fetch-valkey`, or `VALKEY_BIN`, or the `PATH`). A TLS-only server always runs on
/// Redis: the Valkey binary the project fetches is built without TLS.
public enum ServerKind: String, Sendable, CaseIterable {
    /// `redis-server` from Debian's `redis-server` package.
    case redis
    /// `valkey-server`, Valkey 8.
    case valkey

    /// The kind `REDIS_SERVER` names (`redis` when unset).
    ///
    /// An unknown value stops the process with a message, rather than testing the wrong server quietly.
    public static let selected: ServerKind = {
        let value = ProcessInfo.processInfo.environment["REDIS_SERVER"] ?? ""
        if value.isEmpty { return .redis }
        guard let kind = ServerKind(rawValue: value.lowercased()) else {
            FileHandle.standardError.write(Data("REDIS_SERVER='\(value)': expected redis or valkey\n".utf8))
            exit(64)
        }
        return kind
    }()

    /// The server executable, or `nil` when it is not installed.
    public var executable: String? {
        switch self {
        case .redis:
            return RedisServer.findExecutable("redis-server")
        case .valkey:
            var folders: [String] = []
            if let folder = ProcessInfo.processInfo.environment["VALKEY_BIN"], !folder.isEmpty { folders.append(folder) }
            // The folder scripts/fetch-valkey fills, at the root of this package.
            folders.append(
                URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                    .deletingLastPathComponent().appendingPathComponent(".valkey/bin").path)
            for folder in folders {
                let path = folder + "/valkey-server"
                if FileManager.default.isExecutableFile(atPath: path) { return path }
            }
            return RedisServer.findExecutable("valkey-server")
        }
    }

    /// What to run to install it.
    var installHint: String {
        switch self {
        case .redis: "apt-get install redis-server"
        case .valkey: "scripts/fetch-valkey"
        }
    }
}

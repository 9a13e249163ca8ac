import Logging
import RedisSession
import ServiceLifecycle
import UnixSignals

/// Re-reads the session encryption keys on `SIGHUP` and gives them to the running store, so keys rotate without a
/// restart: put the new key first and the old one second on every instance, signal them, and drop the old key once
/// `session-bench keys` counts none of its values (docs/ARCHITECTURE.md, "Encrypted at rest").
///
/// Keys that cannot be read leave the store on the keys it has, and the log says why: a typo in the file must not
/// make every session unreadable.
struct SessionKeysReloader: Service {
    let store: RedisSessionStore
    let read: @Sendable () throws -> SessionEncryption?
    let logger: Logger

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            do {
                let keys = try read()
                store.replaceEncryption(keys)
                logger.notice(
                    "session keys reloaded",
                    metadata: ["rsess.encryption": "\(keys.map { $0.keys.map(\.id).joined(separator: ",") } ?? "off")"])
            } catch {
                logger.error("session keys not reloaded; the previous keys stay", metadata: ["rsess.error": "\(error)"])
            }
        }
    }
}

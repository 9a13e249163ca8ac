#if Vapor
import RedisSession
import Synchronization
import Vapor

/// Runs a store (its `SessionCache`) for as long as the application runs: started when it has booted, ended (and
/// awaited) at shutdown. `app.sessions.use(.redis(store))` installs it when the store has a cache.
final class SessionStoreLifecycle: LifecycleHandler {
    let store: RedisSessionStore
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(store: RedisSessionStore) { self.store = store }

    // Starting a task is synchronous: one hook serves both boots (Vapor's async one calls it).
    //
    // Unstructured on purpose: Vapor gives a lifecycle handler hooks, not a scope to run a child task in. The task is
    // owned here, started once, and cancelled and awaited in `shutdownAsync`, so it never outlives the application.
    func didBoot(_ application: Application) throws {
        task.withLock { task in
            if task == nil { task = Task { [store] in await store.run() } }
        }
    }

    func shutdown(_ application: Application) {
        task.withLock { task in
            task?.cancel()
            task = nil
        }
    }

    func shutdownAsync(_ application: Application) async {
        let running = task.withLock { task in
            defer { task = nil }
            return task
        }
        running?.cancel()
        await running?.value
    }
}
#endif  // Vapor

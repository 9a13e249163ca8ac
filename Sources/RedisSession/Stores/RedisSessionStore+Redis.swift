import RedisClient

/// How ``RedisSessionStore`` talks to Redis: pipelines, scripts and their outcomes, and the errors it reports.
extension RedisSessionStore {
    func pipeline(_ commands: [RedisCommand]) async throws(SessionError) -> [RedisValue] {
        do {
            return try await client.pipeline(commands)
        } catch {
            throw mapError(error)
        }
    }

    /// Runs a script that either does its work or finds the session gone: what it answered after its status, or
    /// ``SessionErrorCode/sessionNotFound``.
    func run(
        _ script: RedisScript, keys: [String], arguments: [any RedisArgumentConvertible], durable: Bool = false
    ) async throws(SessionError) -> [RedisValue] {
        switch try await runForOutcome(script, keys: keys, arguments: arguments, durable: durable) {
        case .done(let values): return values
        case .gone(let reason): throw SessionError(.sessionNotFound, reason)
        case .collision: throw SessionError(.storeUnavailable, "a new session's key is taken")
        case .indexChanged: throw SessionError(.corruptSession, "a session script answered out of turn")
        }
    }

    /// Runs a script and decodes its outcome; a `durable` one (a write that ends a session) also waits for the
    /// configured replicas.
    func runForOutcome(
        _ script: RedisScript, keys: [String], arguments: [any RedisArgumentConvertible], durable: Bool = false
    ) async throws(SessionError) -> SessionScripts.Outcome {
        try SessionScripts.outcome(of: try await evaluate(script, keys: keys, arguments: arguments, durable: durable))
    }

    private func evaluate(
        _ script: RedisScript, keys: [String], arguments: [any RedisArgumentConvertible], durable: Bool
    ) async throws(SessionError) -> RedisValue {
        let acknowledgement = durable ? configuration.replicaAcknowledgement : nil
        let acknowledged: Int
        do {
            guard let acknowledgement, try await replicas.current(on: client) > 0 else {
                return try await client.evaluate(script, keys: keys, arguments: arguments)
            }
            let reply: RedisValue
            (reply, acknowledged) = try await client.evaluate(
                script, keys: keys, arguments: arguments, waitingFor: acknowledgement.replicas,
                timeout: acknowledgement.timeout)
            // Fine if the replicas just went away (nothing to wait for); a failure if they lag.
            guard acknowledged < acknowledgement.replicas, try await replicas.refresh(on: client) > 0 else {
                return reply
            }
        } catch {
            throw mapError(error)
        }
        let wanted = acknowledgement?.replicas ?? 0
        let timeout = acknowledgement?.timeout ?? .zero
        throw SessionError(
            .storeUnavailable,
            "\(acknowledged) of \(wanted) replicas confirmed within \(timeout); a failover now could undo this write")
    }

    /// A client error as the store reports it: a key of the wrong type is corrupt data; anything else means the
    /// store could not do the work now.
    func mapError(_ error: RedisError) -> SessionError {
        guard error.code == .serverError else {
            return SessionError(.storeUnavailable, "the session store is unavailable", underlying: error)
        }
        if error.message.hasPrefix("WRONGTYPE") {
            return SessionError(.corruptSession, "a key under the session prefix is not a session hash")
        }
        return SessionError(.storeUnavailable, "the session store failed", underlying: error)
    }
}

import RedisClient

/// The Lua scripts behind ``RedisSessionStore``. Each runs atomically on the server, in one round trip, reads the
/// clock with `TIME` so that every instance agrees on "now" whatever its own clock says, and touches only the keys
/// it declares in `KEYS`, which all share one hash slot (see ``SessionKeys``).
///
/// The sources are built from ``SessionRecord``: no field name is spelled here. Every script but `touch` answers
/// `{status, ...}`, and ``outcome(of:)`` turns that into an ``Outcome``: a session that is gone is an answer, not an
/// error string to match.
///
/// User index `<prefix>u:{T}<user>`: a sorted set of session digests (`H`, never the ID) scored by the session's
/// absolute expiry (ms). The score never changes, so a load never has to touch the index; members whose score has
/// passed are pruned on every write of the index, and members whose hash is gone (idle expiry) are pruned when
/// listed. The index key itself expires with the absolute lifetime after its last write, so it cannot outlive its
/// sessions.
enum SessionScripts {
    /// The first element of every script's answer.
    enum Status: Int, CaseIterable {
        case done = 0
        /// The session does not exist, or its absolute lifetime is over.
        case gone = 1
        /// The new session's key is taken (a 256-bit random ID met another: never in practice).
        case collision = 2
        /// `destroyAll`: the user's index changed since the caller read it.
        case indexChanged = 3

        var lua: String { String(rawValue) }
    }

    /// What a script did.
    enum Outcome {
        /// It ran; what it answered after its status.
        case done([RedisValue])
        /// The session is gone, and why.
        case gone(String)
        case collision
        case indexChanged
    }

    /// Decodes a script's `{status, ...}` answer.
    static func outcome(of reply: RedisValue) throws(SessionError) -> Outcome {
        guard let values = reply.array, let code = values.first?.int, let status = Status(rawValue: code) else {
            throw SessionError(.corruptSession, "a session script answered \(reply)")
        }
        switch status {
        case .done: return .done(Array(values.dropFirst()))
        case .gone: return .gone(values.dropFirst().first?.string ?? "session does not exist")
        case .collision: return .collision
        case .indexChanged: return .indexChanged
        }
    }

    private typealias Field = SessionRecord.Metadata

    static let now = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        """

    /// Slides the idle timeout, never past the absolute lifetime. Sent detached, only when a load saw that the
    /// touch interval has passed. KEYS[1] session. ARGV: idle ms, absolute ms. Never creates a hash. Nobody reads
    /// its answer.
    static let touch = RedisScript(
        """
        local created = tonumber(redis.call('HGET', KEYS[1], \(Field.created.lua)))
        if created == nil then return 0 end
        \(now)
        local remaining = created + tonumber(ARGV[2]) - now
        if remaining <= 0 then
          redis.call('DEL', KEYS[1])
          return 0
        end
        redis.call('HSET', KEYS[1], \(Field.touched.lua), now)
        redis.call('PEXPIRE', KEYS[1], math.min(tonumber(ARGV[1]), remaining))
        return 1
        """)

    /// Creates a session, or re-creates a taken one under its new user (``take``), keeping its creation time so
    /// the absolute lifetime carries over. KEYS[1] session, KEYS[2] the user's index (signed in only). ARGV: idle
    /// ms, absolute ms, user ('' when anonymous), index member, created ms ('' for now), version ('' for 1), then
    /// field/value pairs. Answers {done, created, now}, gone or collision.
    static let create = RedisScript(
        """
        if redis.call('EXISTS', KEYS[1]) == 1 then return {\(Status.collision.lua)} end
        \(now)
        local absolute = tonumber(ARGV[2])
        local created = tonumber(ARGV[5]) or now
        local remaining = created + absolute - now
        if remaining <= 0 then return {\(Status.gone.lua), 'session expired'} end
        local args = {\(Field.created.lua), created, \(Field.touched.lua), now, \(Field.version.lua), tonumber(ARGV[6]) or 1}
        if ARGV[3] ~= '' then
          args[#args + 1] = \(Field.user.lua)
          args[#args + 1] = ARGV[3]
        end
        for i = 7, #ARGV do args[#args + 1] = ARGV[i] end
        redis.call('HSET', KEYS[1], unpack(args))
        redis.call('PEXPIRE', KEYS[1], math.min(tonumber(ARGV[1]), remaining))
        if ARGV[3] ~= '' then
          redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
          redis.call('ZADD', KEYS[2], created + absolute, ARGV[4])
          redis.call('PEXPIRE', KEYS[2], absolute)
        end
        return {\(Status.done.lua), created, now}
        """)

    /// The first half of a change of user: reads the session and deletes it, with its index entry. A save that
    /// races it finds no session. KEYS[1] session, KEYS[2] its user's index (signed in only). ARGV: index member.
    /// Answers {done, the hash (`HGETALL`)} or gone.
    static let take = RedisScript(
        """
        local fields = redis.call('HGETALL', KEYS[1])
        redis.call('DEL', KEYS[1])
        if KEYS[2] then redis.call('ZREM', KEYS[2], ARGV[1]) end
        for i = 1, #fields, 2 do
          if fields[i] == \(Field.created.lua) then return {\(Status.done.lua), fields} end
        end
        return {\(Status.gone.lua), 'session does not exist'}
        """)

    /// A new ID in the same slot (regenerate), saving pending changes: `RENAME` inside the slot. KEYS[1] session,
    /// KEYS[2] new session, KEYS[3] the user's index (signed in only). ARGV: idle ms, absolute ms, old member, new
    /// member, number of pairs N, N field/value pairs, then fields to remove. Answers {done, version, created, now}
    /// or gone.
    static let move = RedisScript(
        """
        local meta = redis.call('HMGET', KEYS[1], \(Field.created.lua), \(Field.version.lua))
        local created = tonumber(meta[1])
        if created == nil then return {\(Status.gone.lua), 'session does not exist'} end
        \(now)
        local absolute = tonumber(ARGV[2])
        local remaining = created + absolute - now
        if remaining <= 0 then
          redis.call('DEL', KEYS[1])
          return {\(Status.gone.lua), 'session expired'}
        end
        local version = (tonumber(meta[2]) or 0) + 1
        local removeFrom = 6 + 2 * tonumber(ARGV[5])
        local writes = {\(Field.touched.lua), now, \(Field.version.lua), version}
        for i = 6, removeFrom - 1 do writes[#writes + 1] = ARGV[i] end
        redis.call('HSET', KEYS[1], unpack(writes))
        if removeFrom <= #ARGV then redis.call('HDEL', KEYS[1], unpack(ARGV, removeFrom)) end
        redis.call('PEXPIRE', KEYS[1], math.min(tonumber(ARGV[1]), remaining))
        redis.call('RENAME', KEYS[1], KEYS[2])
        if KEYS[3] then
          redis.call('ZREM', KEYS[3], ARGV[3])
          redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
          redis.call('ZADD', KEYS[3], created + absolute, ARGV[4])
          redis.call('PEXPIRE', KEYS[3], absolute)
        end
        return {\(Status.done.lua), version, created, now}
        """)

    /// Destroys a session. KEYS[1] session, KEYS[2] the user's index (when the caller knows the user). ARGV: the
    /// user the session must belong to ('' for any), index member. Answers {done, existed, user or false}.
    static let destroy = RedisScript(
        """
        local user = redis.call('HGET', KEYS[1], \(Field.user.lua))
        if ARGV[1] ~= '' and user ~= ARGV[1] then return {\(Status.done.lua), 0, false} end
        local existed = redis.call('DEL', KEYS[1])
        if KEYS[2] then redis.call('ZREM', KEYS[2], ARGV[2]) end
        return {\(Status.done.lua), existed, user}
        """)

    /// Prunes the index by absolute expiry and lists it. KEYS[1] user index. Answers {done, now, member, ...}.
    static let listIndex = RedisScript(
        """
        \(now)
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
        local members = redis.call('ZRANGE', KEYS[1], 0, -1)
        table.insert(members, 1, now)
        table.insert(members, 1, \(Status.done.lua))
        return members
        """)

    /// Deletes every session of a user and the index, if the index still lists exactly the sessions the caller read
    /// and declared. KEYS[1] user index, KEYS[2...] the sessions of ARGV[1...]. Answers {done, how many lived}, or
    /// indexChanged when the index changed since it was read (the caller reads it again).
    static let destroyAll = RedisScript(
        """
        local members = redis.call('ZRANGE', KEYS[1], 0, -1)
        if #members ~= #ARGV then return {\(Status.indexChanged.lua)} end
        local declared = {}
        for i = 1, #ARGV do declared[ARGV[i]] = true end
        for _, member in ipairs(members) do
          if not declared[member] then return {\(Status.indexChanged.lua)} end
        end
        local live = 0
        for i = 2, #KEYS do live = live + redis.call('DEL', KEYS[i]) end
        redis.call('DEL', KEYS[1])
        return {\(Status.done.lua), live}
        """)
}

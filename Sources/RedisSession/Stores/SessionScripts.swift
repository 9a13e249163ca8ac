import RedisClient

/// The Lua scripts behind ``RedisSessionStore``. Each runs atomically on the server, in one round trip, reads the
/// clock with `TIME` so that every instance agrees on "now" whatever its own clock says, and touches only the keys
/// it declares in `KEYS`, which all share one hash slot (see ``SessionKeys``).
///
/// Session hash fields: `a:<key>` = JSON value of an attribute, `l:<name>` = a label; metadata `_c` created (ms),
/// `_t` last touch (ms), `_u` user id (absent when anonymous), `_v` version. A hash without `_c` is not a session.
///
/// User index `<prefix>u:{T}<user>`: a sorted set of session digests (`H`, never the ID) scored by the session's
/// absolute expiry (ms). The score never changes, so a load never has to touch the index; members whose score has
/// passed are pruned on every write of the index, and members whose hash is gone (idle expiry) are pruned when
/// listed. The index key itself expires with the absolute lifetime after its last write, so it cannot outlive its
/// sessions.
enum SessionScripts {
    static let now = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        """

    /// Slides the idle timeout, never past the absolute lifetime. Sent detached, only when a load saw that the
    /// touch interval has passed. KEYS[1] session. ARGV: idle ms, absolute ms. Never creates a hash.
    static let touch = RedisScript(
        """
        local created = tonumber(redis.call('HGET', KEYS[1], '_c'))
        if created == nil then return 0 end
        \(now)
        local remaining = created + tonumber(ARGV[2]) - now
        if remaining <= 0 then
          redis.call('DEL', KEYS[1])
          return 0
        end
        redis.call('HSET', KEYS[1], '_t', now)
        redis.call('PEXPIRE', KEYS[1], math.min(tonumber(ARGV[1]), remaining))
        return 1
        """)

    /// Creates a session, or re-creates a taken one under its new user (``take``), keeping its creation time so
    /// the absolute lifetime carries over. KEYS[1] session, KEYS[2] the user's index (signed in only). ARGV: idle
    /// ms, absolute ms, user ('' when anonymous), index member, created ms ('' for now), version ('' for 1), then
    /// field/value pairs. Returns {created, now}.
    static let create = RedisScript(
        """
        if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('EXISTS session id collision') end
        \(now)
        local absolute = tonumber(ARGV[2])
        local created = tonumber(ARGV[5]) or now
        local remaining = created + absolute - now
        if remaining <= 0 then return redis.error_reply('GONE session expired') end
        local args = {'_c', created, '_t', now, '_v', tonumber(ARGV[6]) or 1}
        if ARGV[3] ~= '' then
          args[#args + 1] = '_u'
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
        return {created, now}
        """)

    /// The first half of a change of user: reads the session and deletes it, with its index entry. A save that
    /// races it finds no session. KEYS[1] session, KEYS[2] its user's index (signed in only). ARGV: index member.
    /// Returns the hash (`HGETALL`), or a `GONE` error.
    static let take = RedisScript(
        """
        local fields = redis.call('HGETALL', KEYS[1])
        redis.call('DEL', KEYS[1])
        if KEYS[2] then redis.call('ZREM', KEYS[2], ARGV[1]) end
        for i = 1, #fields, 2 do
          if fields[i] == '_c' then return fields end
        end
        return redis.error_reply('GONE session does not exist')
        """)

    /// A new ID in the same slot (regenerate), saving pending changes: `RENAME` inside the slot. KEYS[1] session,
    /// KEYS[2] new session, KEYS[3] the user's index (signed in only). ARGV: idle ms, absolute ms, old member, new
    /// member, number of pairs N, N field/value pairs, then fields to remove. Returns {version, created, now}.
    static let move = RedisScript(
        """
        local meta = redis.call('HMGET', KEYS[1], '_c', '_v')
        local created = tonumber(meta[1])
        if created == nil then return redis.error_reply('GONE session does not exist') end
        \(now)
        local absolute = tonumber(ARGV[2])
        local remaining = created + absolute - now
        if remaining <= 0 then
          redis.call('DEL', KEYS[1])
          return redis.error_reply('GONE session expired')
        end
        local version = (tonumber(meta[2]) or 0) + 1
        local removeFrom = 6 + 2 * tonumber(ARGV[5])
        local writes = {'_t', now, '_v', version}
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
        return {version, created, now}
        """)

    /// Destroys a session. KEYS[1] session, KEYS[2] the user's index (when the caller knows the user). ARGV: the
    /// user the session must belong to ('' for any), index member. Returns {existed, user or false}.
    static let destroy = RedisScript(
        """
        local user = redis.call('HGET', KEYS[1], '_u')
        if ARGV[1] ~= '' and user ~= ARGV[1] then return {0, false} end
        local existed = redis.call('DEL', KEYS[1])
        if KEYS[2] then redis.call('ZREM', KEYS[2], ARGV[2]) end
        return {existed, user}
        """)

    /// Prunes the index by absolute expiry and lists it. KEYS[1] user index. Returns {now, member, member, ...}.
    static let listIndex = RedisScript(
        """
        \(now)
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
        local members = redis.call('ZRANGE', KEYS[1], 0, -1)
        table.insert(members, 1, now)
        return members
        """)

    /// Deletes every session of a user and the index, if the index still lists exactly the sessions the caller read
    /// and declared. KEYS[1] user index, KEYS[2...] the sessions of ARGV[1...]. Returns how many lived, or -1 when
    /// the index changed since it was read (the caller reads it again).
    static let destroyAll = RedisScript(
        """
        local members = redis.call('ZRANGE', KEYS[1], 0, -1)
        if #members ~= #ARGV then return -1 end
        local declared = {}
        for i = 1, #ARGV do declared[ARGV[i]] = true end
        for _, member in ipairs(members) do
          if not declared[member] then return -1 end
        end
        local live = 0
        for i = 2, #KEYS do live = live + redis.call('DEL', KEYS[i]) end
        redis.call('DEL', KEYS[1])
        return live
        """)
}

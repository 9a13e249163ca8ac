import RedisClient

/// The Lua scripts behind ``RedisSessionStore``. Each runs atomically on the server, in one round trip, and reads
/// the clock with `TIME` so that every instance agrees on "now" whatever its own clock says.
///
/// Session hash fields: `a:<key>` = JSON value of an attribute; metadata `_c` created (ms), `_t` last touch (ms),
/// `_u` user id (absent when anonymous), `_v` version. A hash without `_c` is not a session.
///
/// User index `<prefix>u:<user>`: a sorted set of session IDs scored by the session's absolute expiry (ms). The
/// score never changes, so a load never has to touch the index; members whose score has passed are pruned on every
/// read and write of the index, and members whose hash is gone (idle expiry, destroy) are pruned when listed. The
/// index key itself expires with the absolute lifetime after its last write, so it cannot outlive its sessions.
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

    /// KEYS[1] session. ARGV: prefix, id, idle ms, absolute ms, user ('' or '=' .. id), then field/value pairs.
    /// Returns the creation time (ms).
    static let create = RedisScript(
        """
        if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('EXISTS session id collision') end
        \(now)
        local absolute = tonumber(ARGV[4])
        local args = {'_c', now, '_t', now, '_v', 1}
        local user = nil
        if ARGV[5] ~= '' then
          user = string.sub(ARGV[5], 2)
          args[#args + 1] = '_u'
          args[#args + 1] = user
        end
        for i = 6, #ARGV do args[#args + 1] = ARGV[i] end
        redis.call('HSET', KEYS[1], unpack(args))
        redis.call('PEXPIRE', KEYS[1], math.min(tonumber(ARGV[3]), absolute))
        if user then
          local index = ARGV[1] .. 'u:' .. user
          redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
          redis.call('ZADD', index, now + absolute, ARGV[2])
          redis.call('PEXPIRE', index, absolute)
        end
        return now
        """)

    /// A save that also changes the user or the ID (login, logout of a user, regenerate). Plain attribute saves
    /// use a `MULTI`/`EXEC` transaction instead (see ``RedisSessionStore``), which costs the server a third as much.
    /// KEYS[1] session, KEYS[2] target session (a new key when regenerating, else KEYS[1]). ARGV: prefix, old id,
    /// new id, idle ms, absolute ms, user action ('' keep, '-' clear, '=' .. id set), number of pairs N,
    /// N field/value pairs, then fields to remove. Returns {version, created, now}.
    static let move = RedisScript(
        """
        local key = KEYS[1]
        local meta = redis.call('HMGET', key, '_c', '_u', '_v')
        local created = tonumber(meta[1])
        if created == nil then return redis.error_reply('GONE session does not exist') end
        \(now)
        local absolute = tonumber(ARGV[5])
        local remaining = created + absolute - now
        if remaining <= 0 then
          redis.call('DEL', key)
          return redis.error_reply('GONE session expired')
        end
        local version = (tonumber(meta[3]) or 0) + 1
        local removeFrom = 8 + 2 * tonumber(ARGV[7])
        local writes = {'_t', now, '_v', version}
        for i = 8, removeFrom - 1 do writes[#writes + 1] = ARGV[i] end
        local deletes = {}
        for i = removeFrom, #ARGV do deletes[#deletes + 1] = ARGV[i] end
        local oldUser = meta[2]
        local user = oldUser
        if ARGV[6] == '-' then
          user = false
          deletes[#deletes + 1] = '_u'
        elseif ARGV[6] ~= '' then
          user = string.sub(ARGV[6], 2)
          writes[#writes + 1] = '_u'
          writes[#writes + 1] = user
        end
        redis.call('HSET', key, unpack(writes))
        if #deletes > 0 then redis.call('HDEL', key, unpack(deletes)) end
        redis.call('PEXPIRE', key, math.min(tonumber(ARGV[4]), remaining))
        if oldUser and (oldUser ~= user or KEYS[2] ~= key) then
          redis.call('ZREM', ARGV[1] .. 'u:' .. oldUser, ARGV[2])
        end
        if KEYS[2] ~= key then redis.call('RENAME', key, KEYS[2]) end
        if user and (user ~= oldUser or KEYS[2] ~= key) then
          local index = ARGV[1] .. 'u:' .. user
          redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
          redis.call('ZADD', index, created + absolute, ARGV[3])
          redis.call('PEXPIRE', index, absolute)
        end
        return {version, created, now}
        """)

    /// KEYS[1] session. ARGV: prefix, id. Returns 1 if it existed.
    static let destroy = RedisScript(
        """
        local user = redis.call('HGET', KEYS[1], '_u')
        local existed = redis.call('DEL', KEYS[1])
        if user then redis.call('ZREM', ARGV[1] .. 'u:' .. user, ARGV[2]) end
        return existed
        """)

    /// KEYS[1] user index. ARGV: prefix. Returns flat {id, created, touched, pttl, ...} for live sessions.
    static let list = RedisScript(
        """
        \(now)
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
        local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
        local out = {}
        for _, id in ipairs(ids) do
          local key = ARGV[1] .. 's:' .. id
          local meta = redis.call('HMGET', key, '_c', '_t')
          if meta[1] then
            out[#out + 1] = id
            out[#out + 1] = meta[1]
            out[#out + 1] = meta[2] or meta[1]
            out[#out + 1] = redis.call('PTTL', key)
          else
            redis.call('ZREM', KEYS[1], id)
          end
        end
        out[#out + 1] = now
        return out
        """)

    /// KEYS[1] user index. ARGV: prefix. Deletes every session of the user and the index; returns how many lived.
    static let destroyAll = RedisScript(
        """
        local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
        local live = 0
        for _, id in ipairs(ids) do live = live + redis.call('DEL', ARGV[1] .. 's:' .. id) end
        redis.call('DEL', KEYS[1])
        return live
        """)
}

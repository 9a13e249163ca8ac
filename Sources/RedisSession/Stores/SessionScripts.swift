import RedisClient

/// The Lua scripts behind ``RedisSessionStore``. Each runs atomically on the server, in one round trip, and reads
/// the clock with `TIME` so that every instance agrees on "now" whatever its own clock says.
///
/// Session hash fields: `a:<key>` = JSON value of an attribute; metadata `_c` created (ms), `_t` last touch (ms),
/// `_u` user id (absent when anonymous), `_v` version, `_n` attribute count, `_z` attribute bytes (names + values).
/// `_n` and `_z` are maintained by the scripts, so the limits are checked against the stored session, not against
/// one request's possibly stale copy.
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

    /// KEYS[1] session. ARGV: idle ms, absolute ms, touch interval ms.
    /// Returns the hash as a flat array (with a fresh `_t` appended when touched), or nil.
    static let load = RedisScript(
        """
        local fields = redis.call('HGETALL', KEYS[1])
        if #fields == 0 then return false end
        local created, touched
        for i = 1, #fields, 2 do
          local name = fields[i]
          if name == '_c' then created = tonumber(fields[i + 1])
          elseif name == '_t' then touched = tonumber(fields[i + 1]) end
        end
        if created == nil or touched == nil then return redis.error_reply('CORRUPT session hash without metadata') end
        \(now)
        local remaining = created + tonumber(ARGV[2]) - now
        if remaining <= 0 then
          redis.call('DEL', KEYS[1])
          return false
        end
        if now - touched >= tonumber(ARGV[3]) then
          redis.call('HSET', KEYS[1], '_t', now)
          redis.call('PEXPIRE', KEYS[1], math.min(tonumber(ARGV[1]), remaining))
          fields[#fields + 1] = '_t'
          fields[#fields + 1] = tostring(now)
        end
        return fields
        """)

    /// KEYS[1] session. ARGV: prefix, id, idle ms, absolute ms, user ('' or '=' .. id), count, bytes, then
    /// field/value pairs. Returns the creation time (ms).
    static let create = RedisScript(
        """
        if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('EXISTS session id collision') end
        \(now)
        local absolute = tonumber(ARGV[4])
        local args = {'_c', now, '_t', now, '_v', 1, '_n', ARGV[6], '_z', ARGV[7]}
        local user = nil
        if ARGV[5] ~= '' then
          user = string.sub(ARGV[5], 2)
          args[#args + 1] = '_u'
          args[#args + 1] = user
        end
        for i = 8, #ARGV do args[#args + 1] = ARGV[i] end
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

    /// KEYS[1] session, KEYS[2] target session (a new key when regenerating, else KEYS[1]). ARGV: prefix, old id,
    /// new id, idle ms, absolute ms, max count, max bytes, user action ('' keep, '-' clear, '=' .. id set),
    /// number of pairs N, N field/value pairs, then fields to remove. Returns {version, created, now}.
    static let save = RedisScript(
        """
        local key = KEYS[1]
        if redis.call('EXISTS', key) == 0 then return redis.error_reply('GONE session does not exist') end
        local meta = redis.call('HMGET', key, '_c', '_u', '_n', '_z')
        local created = tonumber(meta[1])
        if created == nil then return redis.error_reply('CORRUPT session hash without metadata') end
        \(now)
        local absolute = tonumber(ARGV[5])
        local remaining = created + absolute - now
        if remaining <= 0 then
          redis.call('DEL', key)
          return redis.error_reply('GONE session expired')
        end
        local count = tonumber(meta[3]) or 0
        local bytes = tonumber(meta[4]) or 0
        local pairCount = tonumber(ARGV[9])
        local first = 10
        local removeFrom = first + 2 * pairCount
        for i = first, removeFrom - 1, 2 do
          local old = redis.call('HSTRLEN', key, ARGV[i])
          if old == 0 and redis.call('HEXISTS', key, ARGV[i]) == 0 then
            count = count + 1
            bytes = bytes + #ARGV[i] - 2
          end
          bytes = bytes - old + #ARGV[i + 1]
        end
        for i = removeFrom, #ARGV do
          if redis.call('HEXISTS', key, ARGV[i]) == 1 then
            count = count - 1
            bytes = bytes - redis.call('HSTRLEN', key, ARGV[i]) - (#ARGV[i] - 2)
          end
        end
        if count > tonumber(ARGV[6]) then return redis.error_reply('TOOMANY ' .. count) end
        if bytes > tonumber(ARGV[7]) then return redis.error_reply('TOOLARGE ' .. bytes) end
        for i = first, removeFrom - 1, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
        for i = removeFrom, #ARGV do redis.call('HDEL', key, ARGV[i]) end
        redis.call('HSET', key, '_n', count, '_z', bytes, '_t', now)
        local version = redis.call('HINCRBY', key, '_v', 1)
        redis.call('PEXPIRE', key, math.min(tonumber(ARGV[4]), remaining))
        local oldUser = meta[2]
        local user = oldUser
        if ARGV[8] == '-' then
          user = false
          redis.call('HDEL', key, '_u')
        elseif ARGV[8] ~= '' then
          user = string.sub(ARGV[8], 2)
          redis.call('HSET', key, '_u', user)
        end
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

"""The Lua scripts of the Redis stores, one per operation.

Redis runs a script to its end before serving any other command ("Scripting with
Lua" in the Redis manual), so each script reads and writes one flow, or one page
of an index, atomically. The key layout they work on is described in
:mod:`flow.stores._redis_scripts`, which runs them.
"""

#: Stamps an empty store with the layout version; answers the stored version.
STAMP = """
redis.call('HSETNX', KEYS[1], 'schema_version', ARGV[1])
return redis.call('HGET', KEYS[1], 'schema_version')
"""

# KEYS: flow hash, digest key, all-flows index, state index, provider index,
# expiry index, token expiry index.
# ARGV: flow id, updated score, digest ('' for none), expiry score, token expiry
# score ('' for none), then the hash's field/value pairs.
INSERT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[3] ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[1]) end
for i = 3, 5 do redis.call('ZADD', KEYS[i], ARGV[2], ARGV[1]) end
redis.call('ZADD', KEYS[6], ARGV[4], ARGV[1])
if ARGV[5] ~= '' then redis.call('ZADD', KEYS[7], ARGV[5], ARGV[1]) end
return 1
"""

# KEYS: as for INSERT, with the new digest, state and provider.
# ARGV: flow id, updated score, new digest, expected version, expiry score, token
# expiry score, then the key prefixes of digests, states, providers, expiry and
# token expiry indexes, then the hash's field/value pairs.
SAVE = """
local old = redis.call('HMGET', KEYS[1], 'version', 'state', 'provider', 'state_hash')
if not old[1] then return {'missing'} end
if old[1] ~= ARGV[4] then return {'conflict', old[1]} end
if ARGV[3] ~= '' then
    local owner = redis.call('GET', KEYS[2])
    if owner and owner ~= ARGV[1] then return {'taken'} end
end
if old[4] and old[4] ~= '' and old[4] ~= ARGV[3] then
    redis.call('DEL', ARGV[7] .. old[4])
end
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[1]) end
redis.call('ZREM', ARGV[8] .. old[2], ARGV[1])
redis.call('ZREM', ARGV[9] .. old[3], ARGV[1])
redis.call('ZREM', ARGV[10] .. old[2], ARGV[1])
redis.call('ZREM', ARGV[11] .. old[2], ARGV[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 12))
for i = 3, 5 do redis.call('ZADD', KEYS[i], ARGV[2], ARGV[1]) end
redis.call('ZADD', KEYS[6], ARGV[5], ARGV[1])
if ARGV[6] ~= '' then redis.call('ZADD', KEYS[7], ARGV[6], ARGV[1]) end
return {'saved'}
"""

# KEYS: flow hash, all-flows index, claim marker.
# ARGV: flow id, expected version, then the key prefixes of digests, states,
# providers, expiry and token expiry indexes.
DELETE = """
local old = redis.call('HMGET', KEYS[1], 'version', 'state', 'provider', 'state_hash')
if not old[1] then return {'missing'} end
if old[1] ~= ARGV[2] then return {'conflict', old[1]} end
if old[4] and old[4] ~= '' and redis.call('GET', ARGV[3] .. old[4]) == ARGV[1] then
    redis.call('DEL', ARGV[3] .. old[4])
end
redis.call('ZREM', ARGV[4] .. old[2], ARGV[1])
redis.call('ZREM', ARGV[5] .. old[3], ARGV[1])
redis.call('ZREM', ARGV[6] .. old[2], ARGV[1])
redis.call('ZREM', ARGV[7] .. old[2], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1], KEYS[3])
return {'deleted'}
"""

# KEYS: a flow hash.
LOAD = """
return redis.call('HMGET', KEYS[1], 'version', 'body', 'secrets')
"""

# KEYS: a digest key. ARGV: the prefix of flow hashes.
FIND = """
local id = redis.call('GET', KEYS[1])
if not id then return false end
local row = redis.call('HMGET', ARGV[1] .. id, 'version', 'body', 'secrets')
return {id, row[1], row[2], row[3]}
"""

# KEYS: an index. ARGV: first and last rank, the prefix of flow hashes.
PAGE = """
local rows = {}
for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], ARGV[1], ARGV[2])) do
    local row = redis.call('HMGET', ARGV[3] .. id, 'provider', 'version', 'body',
        'secrets')
    rows[#rows + 1] = {id, row[1], row[2], row[3], row[4]}
end
return rows
"""

# KEYS: one index per state, scored by time. ARGV: the latest score, the most
# flows, the prefix of flow hashes. Each index gives at most that many; the
# earliest of all of them (then by id) are returned.
OLDEST = """
local limit = tonumber(ARGV[2])
local found = {}
for _, key in ipairs(KEYS) do
    local page = redis.call('ZRANGEBYSCORE', key, '-inf', ARGV[1], 'WITHSCORES',
        'LIMIT', 0, limit)
    for i = 1, #page, 2 do found[#found + 1] = {tonumber(page[i + 1]), page[i]} end
end
table.sort(found, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
end)
local rows = {}
for i = 1, math.min(#found, limit) do
    local id = found[i][2]
    local row = redis.call('HMGET', ARGV[3] .. id, 'version', 'body', 'secrets')
    rows[#rows + 1] = {id, row[1], row[2], row[3]}
end
return rows
"""

# KEYS: a token expiry index. ARGV: the latest score; the score and id to start
# after ('' for the start); the most flows; the prefix of flow hashes; the prefix
# of claim markers ('' to only read); how long a marker lasts (ms); the most
# entries to look at. Claiming, a flow whose marker is set is passed over (another
# worker holds it) and every flow returned gets a marker: SET NX decides which
# worker takes it, atomically with the read.
DUE = """
local limit, budget = tonumber(ARGV[4]), tonumber(ARGV[8])
local after = tonumber(ARGV[2])
local low = '-inf'
if after then low = ARGV[2] end
local rows, offset = {}, 0
while #rows < limit and budget > 0 do
    local page = redis.call('ZRANGEBYSCORE', KEYS[1], low, ARGV[1], 'WITHSCORES',
        'LIMIT', offset, math.min(budget, 100))
    if #page == 0 then break end
    offset = offset + #page / 2
    budget = budget - #page / 2
    for i = 1, #page, 2 do
        local id = page[i]
        local take = not (after and tonumber(page[i + 1]) == after and id <= ARGV[3])
        if take and ARGV[6] ~= '' then
            take = redis.call('SET', ARGV[6] .. id, '1', 'NX', 'PX', ARGV[7])
        end
        if take then
            local row = redis.call('HMGET', ARGV[5] .. id, 'version', 'body', 'secrets')
            rows[#rows + 1] = {id, row[1], row[2], row[3]}
            if #rows >= limit then break end
        end
    end
end
return rows
"""

import Testing

@testable import RedisClient

@Suite struct RedisCommandTests {
    @Test func encodesBinarySafeRESP() {
        let command = RedisCommand("SET", "k", [0, 13, 10, 255] as [UInt8], 42)
        let expected =
            Array("*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\n".utf8) + [0, 13, 10, 255] + Array("\r\n$2\r\n42\r\n".utf8)
        #expect(command.encoded == expected)
        #expect(command.name == "SET")
    }

    @Test func encodesEmptyArgumentsAndUnicode() {
        let command = RedisCommand("SET", "", "é")
        #expect(command.encoded == Array("*3\r\n$3\r\nSET\r\n$0\r\n\r\n$2\r\né\r\n".utf8))
    }

    @Test func scriptNamesMatchRedisSHA1() {
        // Values computed by `SCRIPT LOAD` on redis-server 7.
        #expect(RedisScript("return 1").sha1 == "e0e1f9fabfc9d4800c877a703b823ac0578ff8db")
        #expect(RedisScript("").sha1 == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        let long = String(repeating: "return redis.call('GET', KEYS[1]) ", count: 20)
        #expect(RedisScript(long).sha1.count == 40)
    }

    @Test func valueAccessors() {
        #expect(RedisValue.bulkString(Array("12".utf8)).int == 12)
        #expect(RedisValue.integer(7).string == "7")
        #expect(RedisValue.null.isNull)
        #expect(RedisValue.array([.integer(1)]).array == [.integer(1)])
        #expect(RedisValue.error("ERR x").string == nil)
        #expect(throws: RedisError.self) { try RedisValue.error("ERR boom").throwingServerError() }
    }

    @Test func errorCodesAndPrefixes() {
        let error = RedisError(.serverError, "NOSCRIPT No matching script", context: "EVALSHA")
        #expect(error.serverErrorPrefix == "NOSCRIPT")
        #expect(error.description == "serverError: NOSCRIPT No matching script (EVALSHA)")
        #expect(RedisError(.timeout, "x").serverErrorPrefix == nil)
    }
}

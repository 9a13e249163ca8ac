import Foundation
@_spi(Fuzzing) @testable import RedisClient
import Testing

/// hiredis's reader on raw RESP bytes, without a server: what the client makes of every reply, the same on hiredis
/// 0.14 (Debian 12) and 1.x (scripts/fetch-hiredis builds 1.5, and scripts/test runs this suite on it too).
@Suite struct HiredisReaderTests {
    static var major: Int { Int(RedisClient.hiredisVersion.prefix { $0 != "." }) ?? -1 }

    /// A run that means to test a given hiredis says so (`EXPECT_HIREDIS=1.5.0`), so it cannot pass on the other one
    /// by mistake; every run checks the version is one this package supports.
    @Test func theLinkedHiredisIsASupportedOne() {
        let version = RedisClient.hiredisVersion
        #expect(version.hasPrefix("0.14.") || version.hasPrefix("1."), "hiredis \(version)")
        if let expected = ProcessInfo.processInfo.environment["EXPECT_HIREDIS"] {
            #expect(version == expected)
        }
    }

    static let wellFormed: [(bytes: String, value: RedisValue)] = [
        ("+OK\r\n", .simpleString("OK")),
        ("-ERR unknown command\r\n", .error("ERR unknown command")),
        (":42\r\n", .integer(42)),
        (":-9223372036854775808\r\n", .integer(.min)),
        ("$3\r\nabc\r\n", .bulkString(Array("abc".utf8))),
        ("$0\r\n\r\n", .bulkString([])),
        ("$3\r\na\0b\r\n", .bulkString([0x61, 0, 0x62])),
        ("$-1\r\n", .null),
        ("*-1\r\n", .null),
        ("*0\r\n", .array([])),
        ("*2\r\n$1\r\na\r\n*1\r\n:1\r\n", .array([.bulkString([0x61]), .array([.integer(1)])])),
    ]

    @Test(arguments: wellFormed)
    func readsEveryRESP2Type(bytes: String, value: RedisValue) {
        let (replies, error) = ReplyReader.replies(in: Array(bytes.utf8))
        #expect(error == nil)
        #expect(replies == [value])
    }

    /// RESP3's types: 0.14's reader refuses their type byte, 1.x's parses them, and the client refuses them then. On
    /// both, the reply is a protocol error, never a silent `null`.
    static let resp3 = [
        ",3.14\r\n", "#t\r\n", "%1\r\n+a\r\n+b\r\n", "~1\r\n:1\r\n", ">2\r\n+message\r\n+x\r\n",
        "=7\r\ntxt:abc\r\n", "(12345678901234567890\r\n", "*2\r\n:1\r\n,2.5\r\n",
    ]

    @Test(arguments: resp3)
    func refusesRESP3(bytes: String) {
        let (replies, error) = ReplyReader.replies(in: Array(bytes.utf8))
        #expect(replies.isEmpty)
        #expect(error?.code == .protocolError, "\(bytes.debugDescription) on hiredis \(RedisClient.hiredisVersion)")
    }

    /// The one RESP3 type the client cannot tell apart: 1.x reads RESP3's null as the same nil object as RESP2's,
    /// which means the same thing. 0.14 refuses its type byte.
    @Test func resp3NullIsANullOn1xAndAnErrorOn014() {
        let (replies, error) = ReplyReader.replies(in: Array("_\r\n".utf8))
        if Self.major >= 1 {
            #expect(replies == [.null] && error == nil)
        } else {
            #expect(replies.isEmpty && error?.code == .protocolError)
        }
    }

    /// Lengths and numbers Redis never sends: both readers refuse each of them (Debian's 0.14.1 and 1.5 alike, with
    /// the same words), and a connection that got one is not trusted again (any protocol error drops it).
    static let malformed = ["$-5\r\n", "*-5\r\n", ":12abc\r\n", "$abc\r\n", "*4294967296\r\n"]

    @Test(arguments: malformed)
    func malformedLengthsAndNumbers(bytes: String) {
        let (replies, error) = ReplyReader.replies(in: Array(bytes.utf8))
        #expect(error?.code == .protocolError, "\(bytes.debugDescription): \(replies)")
        #expect(replies.isEmpty)
    }
}

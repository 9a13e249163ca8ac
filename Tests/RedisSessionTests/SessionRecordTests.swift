import Foundation
import RedisClient
import Testing

@testable import RedisSession

/// The stored form of a session, without a server: what a save writes, what a load decodes, and what the scripts
/// answer, all from the one ``SessionRecord``.
@Suite struct SessionRecordTests {
    func hash(_ pairs: [(String, String)]) -> [RedisValue] {
        pairs.flatMap { [RedisValue.bulkString(Array($0.0.utf8)), .bulkString(Array($0.1.utf8))] }
    }

    @Test func aSaveWritesTheChangedAttributesAndEveryLabelWhenTheLabelsChanged() throws {
        var session = Session(
            id: SessionID(), userID: "alice", createdAt: Date(), lastSeenAt: Date(), version: 1,
            attributes: ["kept": Array("1".utf8), "gone": Array("2".utf8)], labels: ["agent": "Firefox"])
        session["theme"] = "dark"
        session.remove("gone")
        #expect(try SessionRecord.writes(of: session).map(\.field) == ["a:theme"])
        #expect(SessionRecord.removals(of: session) == ["a:gone"])
        session.labels = ["address": "203.0.113.7"]
        #expect(try SessionRecord.writes(of: session).map(\.field) == ["a:theme", "l:address"])
        #expect(SessionRecord.removals(of: session) == ["a:gone", "l:agent"])
    }

    @Test func whatASaveWritesALoadReadsBack() throws {
        var session = Session(
            id: SessionID(), userID: nil, createdAt: Date(), lastSeenAt: Date(), version: 1, attributes: [:])
        session["timezone"] = "Asia/Tokyo"
        session.labels = ["agent": "Chrome on Linux"]
        let metadata: [(String, String)] = [
            (SessionRecord.Metadata.created.rawValue, "1700000000000"),
            (SessionRecord.Metadata.touched.rawValue, "1700000001000"),
            (SessionRecord.Metadata.version.rawValue, "7"), (SessionRecord.Metadata.user.rawValue, "alice"),
        ]
        let written = try SessionRecord.writes(of: session).map { ($0.field, String(decoding: $0.value, as: UTF8.self)) }
        let decoded = try #require(try SessionRecord.decode(id: session.id, fields: hash(metadata + written)))
        #expect(decoded["timezone"] == "Asia/Tokyo")
        #expect(decoded.labels == ["agent": "Chrome on Linux"])
        #expect(decoded.userID == "alice" && decoded.version == 7)
        #expect(decoded.createdAt == Date(timeIntervalSince1970: 1_700_000_000))
        #expect(decoded.lastSeenAt == Date(timeIntervalSince1970: 1_700_000_001))
    }

    @Test func aHashWithoutItsCreationTimeIsNoSessionAndBrokenMetadataIsCorrupt() throws {
        #expect(try SessionRecord.decode(id: SessionID(), fields: hash([("a:theme", "\"dark\""), ("_t", "1")])) == nil)
        #expect(throws: SessionError.self) {
            try SessionRecord.decode(id: SessionID(), fields: hash([("_c", "soon"), ("_t", "1")]))
        }
        #expect(throws: SessionError.self) {
            try SessionRecord.decode(id: SessionID(), fields: [.bulkString(Array("_c".utf8))])
        }
    }

    @Test func theScriptsSpellNoFieldNameOfTheirOwn() {
        let scripts = [
            SessionScripts.touch, SessionScripts.create, SessionScripts.take, SessionScripts.move,
            SessionScripts.destroy,
        ]
        for metadata in SessionRecord.Metadata.allCases {
            #expect(scripts.contains { $0.source.contains(metadata.lua) }, "\(metadata) is used by some script")
        }
        for script in scripts {
            #expect(!script.source.contains("'GONE"), "no error string stands for an outcome")
        }
    }

    @Test func scriptAnswersAreTypedOutcomes() throws {
        guard case .done(let values) = try SessionScripts.outcome(of: .array([.integer(0), .integer(3)])) else {
            Issue.record("a done answer was not .done")
            return
        }
        #expect(values == [.integer(3)])
        guard
            case .gone(let reason) = try SessionScripts.outcome(
                of: .array([.integer(1), .bulkString(Array("session expired".utf8))]))
        else {
            Issue.record("a gone answer was not .gone")
            return
        }
        #expect(reason == "session expired")
        guard case .indexChanged = try SessionScripts.outcome(of: .array([.integer(3)])) else {
            Issue.record("an index change was not .indexChanged")
            return
        }
        #expect(throws: SessionError.self) { try SessionScripts.outcome(of: .array([.integer(99)])) }
        #expect(throws: SessionError.self) { try SessionScripts.outcome(of: .simpleString("OK")) }
    }
}

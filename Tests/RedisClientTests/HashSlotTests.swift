import RedisClient
import Testing

@Suite struct HashSlotTests {
    @Test func followsTheClusterSpecification() {
        #expect(HashSlot("123456789").value == 0x31C3)  // the specification's CRC16 check value
        #expect(HashSlot("").value == 0)
        #expect(HashSlot("foo").value == 12182)  // as `CLUSTER KEYSLOT foo` answers
        #expect(HashSlot("{user1000}.following") == HashSlot("{user1000}.followers"))
        #expect(HashSlot("{user1000}.following") == HashSlot("user1000"))
    }

    @Test func onlyTheFirstNonEmptyTagCounts() {
        #expect(
            HashSlot("foo{}{bar}") == HashSlot(bytes: Array("foo{}{bar}".utf8)), "an empty tag hashes the whole key")
        #expect(HashSlot("foo{}{bar}") != HashSlot("bar"))
        #expect(HashSlot("foo{{bar}}zap") == HashSlot("{bar"))
        #expect(HashSlot("foo{bar}{zap}") == HashSlot("bar"))
        #expect(HashSlot("{unclosed") == HashSlot(bytes: Array("{unclosed".utf8)))
        for index in 0..<1000 { #expect((0..<HashSlot.count).contains(HashSlot("key:\(index)").value)) }
    }
}

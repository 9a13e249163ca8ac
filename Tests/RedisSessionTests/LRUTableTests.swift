import Testing

@_spi(Internals) @testable import RedisSession

@Suite struct LRUTableTests {
    @Test func evictsTheLeastRecentlyUsedAndReusesItsSlot() {
        var table = LRUTable<Int>(capacity: 2)
        table.set("a", 1)
        table.set("b", 2)
        #expect(table.use("a") == 1)  // b is now the least recently used
        table.set("c", 3)
        #expect(table.peek("b") == nil)
        #expect(table.peek("a") == 1 && table.peek("c") == 3)
        #expect(table.count == 2)
        table.set("a", 10)  // a replacement, not an insertion: nothing is evicted
        #expect(table.count == 2 && table.peek("c") == 3 && table.peek("a") == 10)
    }

    @Test func removesByKeyByValueAndAll() {
        var table = LRUTable<Int>(capacity: 8)
        for (offset, key) in ["a", "b", "c", "d"].enumerated() { table.set(key, offset) }
        #expect(table.remove("b") == 1)
        #expect(table.remove("b") == nil)
        #expect(table.removeAll(where: { $0.isMultiple(of: 2) }) == 2)  // a (0) and c (2)
        #expect(table.count == 1 && table.peek("d") == 3)
        table.set("e", 4)
        table.set("f", 5)
        #expect(table.use("d") == 3)
        table.removeAll()
        #expect(table.count == 0 && table.peek("d") == nil)
        table.set("g", 6)
        #expect(table.use("g") == 6)
    }
}

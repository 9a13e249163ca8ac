/// A map from strings to values, bounded by a count, that evicts the least recently used entry.
///
/// Entries live in one array linked into a recency list by index, so using an entry moves no memory and allocates
/// nothing. Not synchronised: each cache keeps its table inside a `Mutex`.
package struct LRUTable<Value> {
    fileprivate struct Slot {
        var key: String
        var value: Value?  // nil in a free slot, so a removed value is released at once
        var previous: Int
        var next: Int
    }

    /// Most entries held; inserting beyond it evicts the least recently used.
    package let capacity: Int
    private var index: [String: Int] = [:]
    private var slots: [Slot] = []
    private var free: [Int] = []
    private var head = -1
    private var tail = -1

    package init(capacity: Int) {
        precondition(capacity > 0, "an LRU table holds at least one entry")
        self.capacity = capacity
    }

    /// Entries held.
    package var count: Int { index.count }

    /// The value under `key`, without changing its recency.
    package func peek(_ key: String) -> Value? {
        guard let slot = index[key] else { return nil }
        return slots[slot].value
    }

    /// The value under `key`, which becomes the most recently used.
    package mutating func use(_ key: String) -> Value? {
        guard let slot = index[key] else { return nil }
        moveToFront(slot)
        return slots[slot].value
    }

    /// Stores `value` under `key` as the most recently used, evicting the least recently used entry when full.
    package mutating func set(_ key: String, _ value: Value) {
        if let slot = index[key] {
            slots[slot].value = value
            moveToFront(slot)
            return
        }
        if index.count >= capacity, tail >= 0 { _ = removeSlot(tail) }
        let slot = Slot(key: key, value: value, previous: -1, next: head)
        let position: Int
        if let reused = free.popLast() {
            slots[reused] = slot
            position = reused
        } else {
            slots.append(slot)
            position = slots.count - 1
        }
        if head >= 0 { slots[head].previous = position }
        head = position
        if tail < 0 { tail = position }
        index[key] = position
    }

    /// Removes the entry under `key`; returns its value.
    @discardableResult
    package mutating func remove(_ key: String) -> Value? {
        guard let slot = index[key] else { return nil }
        return removeSlot(slot)
    }

    /// Removes every entry whose value matches; returns how many went.
    @discardableResult
    package mutating func removeAll(where matches: (Value) -> Bool) -> Int {
        let doomed = index.filter { _, slot in slots[slot].value.map(matches) ?? false }
        for (_, slot) in doomed { removeSlot(slot) }
        return doomed.count
    }

    /// Removes every entry, keeping the storage for reuse.
    package mutating func removeAll() {
        index.removeAll(keepingCapacity: true)
        slots.removeAll(keepingCapacity: true)
        free.removeAll(keepingCapacity: true)
        head = -1
        tail = -1
    }

    @discardableResult
    private mutating func removeSlot(_ slot: Int) -> Value? {
        unlink(slot)
        index[slots[slot].key] = nil
        let value = slots[slot].value
        slots[slot].value = nil
        free.append(slot)
        return value
    }

    private mutating func moveToFront(_ slot: Int) {
        guard head != slot else { return }
        unlink(slot)
        slots[slot].previous = -1
        slots[slot].next = head
        if head >= 0 { slots[head].previous = slot }
        head = slot
        if tail < 0 { tail = slot }
    }

    private mutating func unlink(_ slot: Int) {
        let previous = slots[slot].previous
        let next = slots[slot].next
        if previous >= 0 { slots[previous].next = next } else { head = next }
        if next >= 0 { slots[next].previous = previous } else { tail = previous }
    }
}

extension LRUTable: Sendable where Value: Sendable {}
extension LRUTable.Slot: Sendable where Value: Sendable {}

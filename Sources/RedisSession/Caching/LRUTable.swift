/// A map from strings to values, bounded by a count, that evicts the least recently used entry.
///
/// Entries live in one array linked into a recency list by index, so using an entry moves no memory and allocates
/// nothing. Not synchronised: `CacheCore` guards it (a reader holds its CPU's lock, a writer holds them all).
///
/// `@inlinable` throughout: the settings cache uses it from another module, and a generic type that is not
/// specialised there costs several times more per lookup.
@frozen @_spi(Internals) public struct LRUTable<Value> {
    @usableFromInline struct Slot {
        @usableFromInline var key: String
        @usableFromInline var value: Value?  // nil in a free slot, so a removed value is released at once
        @usableFromInline var previous: Int
        @usableFromInline var next: Int

        @inlinable init(key: String, value: Value?, previous: Int, next: Int) {
            self.key = key
            self.value = value
            self.previous = previous
            self.next = next
        }
    }

    /// Most entries held; inserting beyond it evicts the least recently used.
    public let capacity: Int
    @usableFromInline var index: [String: Int] = [:]
    @usableFromInline var slots: [Slot] = []
    @usableFromInline var free: [Int] = []
    @usableFromInline var head = -1
    @usableFromInline var tail = -1

    @inlinable public init(capacity: Int) {
        precondition(capacity > 0, "an LRU table holds at least one entry")
        self.capacity = capacity
    }

    /// Entries held.
    @inlinable public var count: Int { index.count }

    /// The value under `key`, without changing its recency.
    @inlinable public func peek(_ key: String) -> Value? {
        guard let slot = index[key] else { return nil }
        return slots[slot].value
    }

    /// The value under `key`, which becomes the most recently used.
    @inlinable public mutating func use(_ key: String) -> Value? {
        guard let slot = index[key] else { return nil }
        moveToFront(slot)
        return slots[slot].value
    }

    /// The value under `key` and the slot it lives in (below ``capacity``), without changing its recency: for
    /// readers that record use elsewhere (see ``set(_:_:secondChance:)``).
    @inlinable public func slotAndValue(_ key: String) -> (slot: Int, value: Value)? {
        guard let slot = index[key], let value = slots[slot].value else { return nil }
        return (slot, value)
    }

    /// Stores `value` under `key` as the most recently used, evicting the least recently used entry when full.
    @inlinable public mutating func set(_ key: String, _ value: Value) {
        set(key, value, secondChance: { _ in false })
    }

    /// Stores `value` under `key` as the most recently used; when full, evicts the least recently used entry that
    /// `secondChance` turns down. An entry it keeps (it was read since it was last here: the caller clears that
    /// mark) moves to the front instead, so readers that never move entries still get least-recently-used eviction,
    /// to within one pass (the CLOCK algorithm).
    ///
    /// - Returns: The slot the value lives in.
    @inlinable @discardableResult
    public mutating func set(_ key: String, _ value: Value, secondChance: (Int) -> Bool) -> Int {
        if let slot = index[key] {
            slots[slot].value = value
            moveToFront(slot)
            return slot
        }
        if index.count >= capacity, tail >= 0 {
            var passes = index.count
            while passes > 0, secondChance(tail) {
                moveToFront(tail)
                passes -= 1
            }
            _ = removeSlot(tail)
        }
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
        return position
    }

    /// Removes the entry under `key`; returns its value.
    @inlinable @discardableResult public mutating func remove(_ key: String) -> Value? {
        guard let slot = index[key] else { return nil }
        return removeSlot(slot)
    }

    /// Removes every entry whose value matches; returns how many went.
    @inlinable @discardableResult public mutating func removeAll(where matches: (Value) -> Bool) -> Int {
        let doomed = index.filter { _, slot in slots[slot].value.map(matches) ?? false }
        for (_, slot) in doomed { removeSlot(slot) }
        return doomed.count
    }

    /// Removes every entry, keeping the storage for reuse.
    @inlinable public mutating func removeAll() {
        index.removeAll(keepingCapacity: true)
        slots.removeAll(keepingCapacity: true)
        free.removeAll(keepingCapacity: true)
        head = -1
        tail = -1
    }

    @inlinable @discardableResult mutating func removeSlot(_ slot: Int) -> Value? {
        unlink(slot)
        index[slots[slot].key] = nil
        let value = slots[slot].value
        slots[slot].value = nil
        free.append(slot)
        return value
    }

    @inlinable mutating func moveToFront(_ slot: Int) {
        guard head != slot else { return }
        unlink(slot)
        slots[slot].previous = -1
        slots[slot].next = head
        if head >= 0 { slots[head].previous = slot }
        head = slot
        if tail < 0 { tail = slot }
    }

    @inlinable mutating func unlink(_ slot: Int) {
        let previous = slots[slot].previous
        let next = slots[slot].next
        if previous >= 0 { slots[previous].next = next } else { head = next }
        if next >= 0 { slots[next].previous = previous } else { tail = previous }
    }
}

extension LRUTable: Sendable where Value: Sendable {}
extension LRUTable.Slot: Sendable where Value: Sendable {}

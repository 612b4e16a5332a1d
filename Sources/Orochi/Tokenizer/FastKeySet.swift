/// A map from 64-bit keys to 64-bit values with open addressing and a multiplicative hash:
/// lookups on the encode path cost a few nanoseconds (Swift's Dictionary hashes with SipHash,
/// which dominated BPE profiles).
struct FastKeyMap {
    private var keys: [UInt64]
    private var values: [UInt64]
    private var occupied: [Bool]
    private let shift: UInt64

    /// Entries with a repeated key keep the first value.
    init(_ entries: [(UInt64, UInt64)]) {
        var capacityLog2: UInt64 = 4
        while (1 << capacityLog2) < entries.count * 2 { capacityLog2 += 1 }
        keys = [UInt64](repeating: 0, count: 1 << capacityLog2)
        values = keys
        occupied = [Bool](repeating: false, count: 1 << capacityLog2)
        shift = 64 - capacityLog2
        for (key, value) in entries {
            var index = slot(key)
            while occupied[index] && keys[index] != key { index = (index + 1) & (keys.count - 1) }
            if occupied[index] { continue }
            keys[index] = key
            values[index] = value
            occupied[index] = true
        }
    }

    @inline(__always)
    private func slot(_ key: UInt64) -> Int { Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift) }

    @inline(__always)
    subscript(_ key: UInt64) -> UInt64? {
        var index = slot(key)
        while occupied[index] {
            if keys[index] == key { return values[index] }
            index = (index + 1) & (keys.count - 1)
        }
        return nil
    }

    @inline(__always)
    func contains(_ key: UInt64) -> Bool { self[key] != nil }
}

/// A set of 64-bit keys (a `FastKeyMap` without values).
struct FastKeySet {
    private let map: FastKeyMap
    init<S: Sequence>(_ keys: S) where S.Element == UInt64 { map = FastKeyMap(keys.map { ($0, 0) }) }
    @inline(__always)
    func contains(_ key: UInt64) -> Bool { map.contains(key) }
}

/// A set of 64-bit keys with open addressing and a multiplicative hash: membership tests on
/// the encode path cost a few nanoseconds (Swift's Set hashes with SipHash).
struct FastKeySet {
    private var slots: [UInt64]
    private var occupied: [Bool]
    private let shift: UInt64

    init<S: Sequence>(_ keys: S) where S.Element == UInt64 {
        let unique = Array(Set(keys))
        var capacityLog2: UInt64 = 4
        while (1 << capacityLog2) < unique.count * 2 { capacityLog2 += 1 }
        slots = [UInt64](repeating: 0, count: 1 << capacityLog2)
        occupied = [Bool](repeating: false, count: 1 << capacityLog2)
        shift = 64 - capacityLog2
        for key in unique {
            var index = slot(key)
            while occupied[index] { index = (index + 1) & (slots.count - 1) }
            slots[index] = key
            occupied[index] = true
        }
    }

    @inline(__always)
    private func slot(_ key: UInt64) -> Int { Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift) }

    @inline(__always)
    func contains(_ key: UInt64) -> Bool {
        var index = slot(key)
        while occupied[index] {
            if slots[index] == key { return true }
            index = (index + 1) & (slots.count - 1)
        }
        return false
    }
}

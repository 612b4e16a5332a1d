/// A read-only trie over byte strings, flattened so each node's children are contiguous and
/// sorted: the Viterbi lattice and the user-defined-symbol matcher walk it byte by byte.
struct ByteTrie {
    private var rootChildren = [Int32](repeating: -1, count: 256)  // dense: every walk starts here
    /// Nodes with many children (after a UTF-8 lead byte, typically) get a dense 256-entry
    /// table too: the walk then costs one load per byte instead of a binary search.
    private var denseOffset: [Int32] = []
    private var denseChildren: [Int32] = []
    private static let denseThreshold = 12
    private var firstEdge: [Int32] = []
    private var edgeCount: [UInt16] = []
    private var edgeLabels: [UInt8] = []
    private var edgeTargets: [Int32] = []
    /// The value stored at each node, -1 where no key ends.
    private(set) var values: [Int32] = []

    static let root: Int32 = 0

    /// Keys with their values; a repeated key keeps its first value.
    init(_ entries: [([UInt8], Int32)]) {
        // Build with per-node child lists, then flatten breadth-first.
        var children: [[(UInt8, Int32)]] = [[]]
        var nodeValues: [Int32] = [-1]
        for (key, value) in entries where !key.isEmpty {
            var node = 0
            for byte in key {
                if let found = children[node].first(where: { $0.0 == byte }) {
                    node = Int(found.1)
                } else {
                    children.append([])
                    nodeValues.append(-1)
                    children[node].append((byte, Int32(children.count - 1)))
                    node = children.count - 1
                }
            }
            if nodeValues[node] < 0 { nodeValues[node] = value }
        }
        firstEdge = [Int32](repeating: 0, count: children.count)
        edgeCount = [UInt16](repeating: 0, count: children.count)
        values = nodeValues
        denseOffset = [Int32](repeating: -1, count: children.count)
        for node in children.indices {
            let sorted = children[node].sorted { $0.0 < $1.0 }
            if node != 0 && sorted.count >= Self.denseThreshold {
                denseOffset[node] = Int32(denseChildren.count)
                denseChildren.append(contentsOf: repeatElement(-1, count: 256))
                for (label, target) in sorted { denseChildren[Int(denseOffset[node]) + Int(label)] = target }
            }
            firstEdge[node] = Int32(edgeLabels.count)
            edgeCount[node] = UInt16(sorted.count)
            for (label, target) in sorted {
                edgeLabels.append(label)
                edgeTargets.append(target)
                if node == 0 { rootChildren[Int(label)] = target }
            }
        }
    }

    var isEmpty: Bool { values.count <= 1 }

    /// The child of `node` along `byte`, or -1.
    @inline(__always)
    func child(_ node: Int32, _ byte: UInt8) -> Int32 {
        if node == 0 { return rootChildren[Int(byte)] }
        let dense = denseOffset[Int(node)]
        if dense >= 0 { return denseChildren[Int(dense) + Int(byte)] }
        var low = Int(firstEdge[Int(node)])
        var high = low + Int(edgeCount[Int(node)])
        if high - low <= 4 {  // few children: a linear scan beats the branches of a search
            for k in low..<high where edgeLabels[k] == byte { return edgeTargets[k] }
            return -1
        }
        while low < high {
            let mid = (low + high) >> 1
            let label = edgeLabels[mid]
            if label == byte { return edgeTargets[mid] }
            if label < byte { low = mid + 1 } else { high = mid }
        }
        return -1
    }

    /// The length and value of the longest key that is a prefix of `text[start...]`.
    func longestPrefix(_ text: UnsafeBufferPointer<UInt8>, from start: Int) -> (length: Int, value: Int32)? {
        var node = ByteTrie.root
        var best: (Int, Int32)?
        var position = start
        while position < text.count {
            node = child(node, text[position])
            if node < 0 { break }
            position += 1
            if values[Int(node)] >= 0 { best = (position - start, values[Int(node)]) }
        }
        return best
    }

    /// The value of exactly `key`, or -1.
    func value(of key: ArraySlice<UInt8>) -> Int32 {
        var node = ByteTrie.root
        for byte in key {
            node = child(node, byte)
            if node < 0 { return -1 }
        }
        return values[Int(node)]
    }
}

/// Reads a darts-clone double-array trie, the format of sentencepiece's precompiled charsmap.
/// Each 32-bit unit packs a label, an offset to the children, and a has-leaf flag.
struct DoubleArrayTrie {
    private let units: [UInt32]

    init(units: [UInt32]) { self.units = units }

    /// darts-clone's DoubleArrayImpl::validate: the root is a non-leaf with children inside
    /// the array, every label unit's children (and leaf) lie inside it, every value is below
    /// `maxValue`. Nil when valid, else what is wrong.
    func validate(maxValue: Int) -> String? {
        let size = units.count
        guard size > 0 else { return "no units" }
        func label(_ unit: UInt32) -> UInt32 { unit & 0x8000_00FF }
        func hasLeaf(_ unit: UInt32) -> Bool { (unit >> 8) & 1 == 1 }
        let root = units[0]
        guard label(root) == 0, !hasLeaf(root), Self.offset(root) != 0, Int(Self.offset(root)) | 0xFF < size else {
            return "root unit 0x\(String(root, radix: 16)) is not a root with children inside the \(size) units"
        }
        for i in 1..<size {
            let unit = units[i]
            if label(unit) <= 0xFF {
                let children = i ^ Int(Self.offset(unit))
                guard children | 0xFF < size else { return "unit \(i) points to \(children), past the \(size) units" }
                if hasLeaf(unit) && label(units[children]) <= 0xFF { return "unit \(i) has a leaf that holds no value" }
            } else if Int(unit & 0x7FFF_FFFF) >= maxValue {
                return "unit \(i) holds value \(unit & 0x7FFF_FFFF), past the \(maxValue) bytes of replacement strings"
            }
        }
        return nil
    }

    /// The longest key that prefixes `text[start...]`: its length and stored value.
    func longestPrefix(_ text: UnsafeBufferPointer<UInt8>, from start: Int, stopAtFirst: Bool = false) -> (length: Int, value: Int)? {
        guard !units.isEmpty else { return nil }
        var best: (Int, Int)?
        var unit = units[0]
        var position = Int(Self.offset(unit))
        var index = start
        while index < text.count {
            let label = UInt32(text[index])
            position ^= Int(label)
            guard position >= 0, position < units.count else { return best }
            unit = units[position]
            // label(): the low byte plus the top bit, which marks a leaf unit (never a label).
            if unit & 0x8000_00FF != label { return best }
            position ^= Int(Self.offset(unit))
            index += 1
            if (unit >> 8) & 1 == 1, position >= 0, position < units.count {
                best = (index - start, Int(units[position] & 0x7FFF_FFFF))
                if stopAtFirst { return best }
            }
        }
        return best
    }

    @inline(__always)
    private static func offset(_ unit: UInt32) -> UInt32 {
        (unit >> 10) << ((unit & (1 << 9)) >> 6)
    }
}

/// A binary max-heap: the agenda of candidate merges in BPE. Elements define their own
/// priority through `<` ("a is popped after b").
struct BinaryHeap<Element: Comparable> {
    private var storage: [Element] = []

    init(capacity: Int = 0) { storage.reserveCapacity(capacity) }

    var isEmpty: Bool { storage.isEmpty }

    mutating func push(_ element: Element) {
        storage.append(element)
        var child = storage.count - 1
        while child > 0 {
            let parent = (child - 1) >> 1
            guard storage[parent] < storage[child] else { break }
            storage.swapAt(parent, child)
            child = parent
        }
    }

    mutating func pop() -> Element? {
        guard let top = storage.first else { return nil }
        let last = storage.removeLast()
        if !storage.isEmpty {
            storage[0] = last
            var parent = 0
            let count = storage.count
            while true {
                let left = 2 * parent + 1
                if left >= count { break }
                var largest = left
                if left + 1 < count && storage[left] < storage[left + 1] { largest = left + 1 }
                guard storage[parent] < storage[largest] else { break }
                storage.swapAt(parent, largest)
                parent = largest
            }
        }
        return top
    }

    mutating func removeAll() { storage.removeAll(keepingCapacity: true) }
}

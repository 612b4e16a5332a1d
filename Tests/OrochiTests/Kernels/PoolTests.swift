import COrochiKernels
import Foundation
import Testing
@testable import OrochiKernels

/// The thread pool's contract: every chunk of a job runs exactly once, whichever thread claims it
/// (each thread its own homes first, then the others' from the back), and the shrinking chunks of
/// one-token kernels cover their rows exactly, in equal slices per home.
struct PoolTests {
    @Test func everyChunkRunsOnce() {
        let threadsBefore = BLAS.threads
        defer { BLAS.threads = threadsBefore }
        for threads in [1, 2, 3] {
            BLAS.threads = threads
            // One home (1–3 chunks), several, a last home of fewer than three, more than 64 homes.
            for parts in [1, 2, 3, 4, 6, 7, 12, 191, 192, 193, 1000] {
                for _ in 0..<20 {
                    let runs = UnsafeMutablePointer<Int>.allocate(capacity: parts)
                    runs.initialize(repeating: 0, count: parts)
                    defer { runs.deallocate() }
                    Parallel.run(parts: parts) { part, count in
                        precondition(count == parts)
                        runs[part] += 1
                    }
                    let wrong = (0..<parts).filter { runs[$0] != 1 }
                    #expect(wrong.isEmpty, "\(threads) threads, \(parts) parts: parts \(wrong.prefix(5)) ran \(wrong.prefix(5).map { runs[$0] }) times")
                }
            }
        }
    }

    @Test func shrinkingChunksCoverTheRowsInEqualSlices() {
        for total in [0, 1, 5, 64, 1000, 32000] {
            for count in 1...200 {
                let starts = (0...count).map { orochi_pool_guided_start(total, Int32($0), Int32(count)) }
                #expect(starts.first == 0 && starts.last == total, "total \(total), \(count) chunks: starts at \(starts.first!), ends at \(starts.last!)")
                #expect(zip(starts, starts.dropFirst()).allSatisfy { $0 <= $1 }, "total \(total), \(count) chunks: starts go back")
                let homes = Int(orochi_pool_homes(Int32(count)))
                guard homes > 1 else { continue }
                for home in 0..<homes {                                 // home h starts at its slice, total·h/homes
                    let start = starts[home * Int(OROCHI_POOL_HOME_CHUNKS)]
                    #expect(start == total * home / homes, "total \(total), \(count) chunks: home \(home) starts at \(start)")
                    // Within a home the chunks shrink: the owner takes the big ones first.
                    let end = min(count, (home + 1) * Int(OROCHI_POOL_HOME_CHUNKS))
                    let sizes = (home * Int(OROCHI_POOL_HOME_CHUNKS)..<end).map { starts[$0 + 1] - starts[$0] }
                    #expect(zip(sizes, sizes.dropFirst()).allSatisfy { $0 >= $1 }, "total \(total), \(count) chunks: home \(home) sizes \(sizes)")
                }
            }
        }
    }
}

import Benchmark
import Foundation
import Orochi

// Micro-benchmarks of the kernels behind one forward pass, at the 130M presets' shapes
// (hidden 768, MLP 2048, 12 heads of 64; Mamba: inner 1536, state 16). Run with `make microbench`.
// The machine is shared: compare results of one run with each other, not across runs.

/// A filled buffer that lives as long as the benchmark closure that captures it.
final class Buffer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int
    init(_ count: Int, seed: UInt64 = 1, scale: Float = 1) {
        self.count = count
        pointer = .allocate(capacity: count)
        var rng = SplitMix64(seed: seed)
        for i in 0..<count { pointer[i] = (rng.nextUnitFloat() - 0.5) * 2 * scale }
    }
    deinit { pointer.deallocate() }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .throughput, .mallocCountTotal],
        warmupIterations: 3,
        maxDuration: .seconds(2),
        maxIterations: 10_000)
    let threads = Int(ProcessInfo.processInfo.environment["THREADS"] ?? "") ?? 2

    // One token through one MLP projection, W[2048, 768] · x[768]: sgemv (what decode uses) vs
    // sgemm with one row (what a naive batch-of-one would call).
    let w = Buffer(2048 * 768, seed: 2, scale: 0.03)
    let x = Buffer(768, seed: 3)
    let y = Buffer(2048)
    Benchmark("sgemv one token 2048x768") { benchmark in
        BLAS.threads = threads
        for _ in benchmark.scaledIterations {
            BLAS.matvec(w.pointer, outputs: 2048, inner: 768, x.pointer, into: y.pointer)
            blackHole(y.pointer[0])
        }
    }
    Benchmark("sgemm one row 1x768 · (2048x768)ᵀ") { benchmark in
        BLAS.threads = threads
        for _ in benchmark.scaledIterations {
            BLAS.matmul(x.pointer, rows: 1, inner: 768, weight: w.pointer, outputs: 2048, into: y.pointer)
            blackHole(y.pointer[0])
        }
    }
    // The same projection for a prefill chunk of 128 tokens: sgemm's home ground.
    let xs = Buffer(128 * 768, seed: 4)
    let ys = Buffer(128 * 2048)
    Benchmark("sgemm 128 tokens 128x768 · (2048x768)ᵀ") { benchmark in
        BLAS.threads = threads
        for _ in benchmark.scaledIterations {
            BLAS.matmul(xs.pointer, rows: 128, inner: 768, weight: w.pointer, outputs: 2048, into: ys.pointer)
            blackHole(ys.pointer[0])
        }
    }

    // Softmax over one head's attention scores at depth 4096 (decode) and 16384.
    for n in [4096, 16384] {
        let scores = Buffer(n, seed: 5, scale: 8)
        let work = Buffer(n)
        Benchmark("softmax \(n)") { benchmark in
            for _ in benchmark.scaledIterations {
                memcpy(work.pointer, scores.pointer, n * 4)
                Kernels.softmax(work.pointer, count: n)
                blackHole(work.pointer[0])
            }
        }
    }

    // RoPE on one token's queries: 12 heads of 64.
    let rope = RotaryEmbedding(invFreq: RopeScaling.none.inverseFrequencies(theta: 10000, headDim: 64),
                               headDim: 64, capacity: 4096)
    let q = Buffer(12 * 64, seed: 6)
    Benchmark("rope 12 heads x 64, one token") { benchmark in
        for i in benchmark.scaledIterations {
            rope.apply(q.pointer, heads: 12, position: i % 4096)
            blackHole(q.pointer[0])
        }
    }

    // The selective scan of one Mamba layer (inner E = 1536, state N = 16): the work an SSM does
    // per token and layer instead of attention, independent of the depth. One decode step with the
    // engine's kernel, a 512-token prefill chunk with it, and the recurrence written out as scalar
    // Swift (h ← exp(Δ·A) ⊙ h + Δ·B·x;  y = C·h + D·x) for comparison.
    let inner = 1536, state = 16, chunk = 512
    let a = Buffer(inner * state, seed: 7)
    for i in 0..<a.count { a.pointer[i] = -abs(a.pointer[i]) - 0.1 }     // A = −exp(A_log) < 0
    let h = Buffer(inner * state, seed: 8, scale: 0.1)
    let dt = Buffer(chunk * inner, seed: 9, scale: 0.5), dtBias = Buffer(inner, seed: 14, scale: 0.1)
    let bc = Buffer(chunk * 2 * state, seed: 10)                         // B and C rows side by side
    let xv = Buffer(chunk * inner, seed: 12), z = Buffer(chunk * inner, seed: 15)
    let dv = Buffer(inner, seed: 13), yv = Buffer(chunk * inner)
    Benchmark("selective scan, one step 1536x16 (SelectiveScan)") { benchmark in
        for _ in benchmark.scaledIterations {
            SelectiveScan.scan(steps: 1, channels: inner, stateSize: state, x: xv.pointer, delta: dt.pointer,
                               deltaBias: dtBias.pointer, a: a.pointer, b: bc.pointer, c: bc.pointer + state, ldbc: 2 * state,
                               d: dv.pointer, z: z.pointer, ldz: inner, state: h.pointer, into: yv.pointer)
            blackHole(yv.pointer[0])
        }
    }
    Benchmark("selective scan, 512 steps 1536x16 (SelectiveScan, \(threads) threads)") { benchmark in
        for _ in benchmark.scaledIterations {
            SelectiveScan.scan(steps: chunk, channels: inner, stateSize: state, x: xv.pointer, delta: dt.pointer,
                               deltaBias: dtBias.pointer, a: a.pointer, b: bc.pointer, c: bc.pointer + state, ldbc: 2 * state,
                               d: dv.pointer, z: z.pointer, ldz: inner, state: h.pointer, into: yv.pointer, threads: threads)
            blackHole(yv.pointer[0])
        }
    }
    Benchmark("selective scan, one step 1536x16 (scalar reference)") { benchmark in
        for _ in benchmark.scaledIterations {
            for i in 0..<inner {
                let delta = dt.pointer[i], xi = xv.pointer[i]
                var acc: Float = 0
                let hi = h.pointer + i * state, ai = a.pointer + i * state
                for s in 0..<state {
                    let v = expf(delta * ai[s]) * hi[s] + delta * bc.pointer[s] * xi
                    hi[s] = v
                    acc += bc.pointer[state + s] * v
                }
                yv.pointer[i] = acc + dv.pointer[i] * xi
            }
            blackHole(yv.pointer[0])
        }
    }

    // The tokenizers on the 1,055 lines (79 KB, mostly Japanese) of the tokenizer fixtures, one
    // line at a time as a prompt would be; throughput is in lines.
    let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let fixtures = root.appendingPathComponent("Tests/OrochiTests/Fixtures/tokenizers")
    let lines = ((try? String(contentsOf: fixtures.appendingPathComponent("lines.txt"), encoding: .utf8)) ?? "")
        .split(separator: "\n").map(String.init)
    for (label, file) in [("sentencepiece unigram", "sp-unigram-nmt-nfkc/tokenizer.model"),
                          ("tokenizer.json byte-level BPE", "hf-bpe-bytelevel/tokenizer.json")] {
        guard let tokenizer = try? loadTokenizer(file: fixtures.appendingPathComponent(file)), !lines.isEmpty else { continue }
        let box = TokenizerBox(tokenizer)
        Benchmark("tokenize \(label), \(lines.count) lines") { benchmark in
            for _ in benchmark.scaledIterations {
                var total = 0
                for line in lines { total += box.tokenizer.encode(line, addSpecialTokens: false).count }
                blackHole(total)
            }
        }
    }
}

/// Lets a tokenizer (a class without Sendable) be captured by the benchmark closure; used from one thread.
final class TokenizerBox: @unchecked Sendable {
    let tokenizer: any Tokenizer
    init(_ tokenizer: any Tokenizer) { self.tokenizer = tokenizer }
}

import COrochiKernels
import Foundation

/// Matrix products. Weights are stored as Hugging Face `nn.Linear` stores them: row-major
/// [out, in], so a layer computes y = x · Wᵀ. Many tokens go through OpenBLAS's sgemm (loaded at
/// first use with the best kernels for this CPU: see `BLAS.core`); one token through our own
/// matrix-vector kernels, which read half-precision weights as stored and run on our thread pool.
public enum BLAS {
    /// Many tokens: X[m, k] · W[n, k]ᵀ → Y[m, n] (sgemm). `ldx`/`ldy` allow strided row views.
    @inline(__always)
    public static func matmul(
        _ x: UnsafePointer<Float>, rows m: Int, inner k: Int, ldx: Int? = nil,
        weight w: UnsafePointer<Float>, outputs n: Int,
        into y: UnsafeMutablePointer<Float>, ldy: Int? = nil, accumulate: Bool = false
    ) {
        orochi_sgemm(noTrans, trans, Int32(m), Int32(n), Int32(k), 1.0,
                     x, Int32(ldx ?? k), w, Int32(k), accumulate ? 1.0 : 0.0, y, Int32(ldy ?? n))
    }

    /// One token: W[n, k] · x[k] → y[n] (or y += …), f32 weights. Our kernel, not sgemv: OpenBLAS
    /// 0.3.21 threads even tiny sgemv calls at a loss, and has no half-precision version.
    @inline(__always)
    public static func matvec(
        _ w: UnsafePointer<Float>, outputs n: Int, inner k: Int, ldw: Int? = nil,
        _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, accumulate: Bool = false
    ) {
        orochi_matvec(Int32(OROCHI_F32), w, n, k, ldw ?? k, x, y, accumulate ? 1 : 0)
    }

    /// Transposed product: W[k, n]ᵀ · x[k] → y[n], e.g. attention weights times values.
    @inline(__always)
    public static func matvecTransposed(
        _ w: UnsafePointer<Float>, rows k: Int, columns n: Int, ldw: Int? = nil,
        _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>
    ) {
        orochi_sgemv(trans, Int32(k), Int32(n), 1.0, w, Int32(ldw ?? n), x, 0.0, y)
    }

    /// General row-major product A[m, k] · B[k, n] → C[m, n] with leading dimensions.
    @inline(__always)
    public static func gemm(
        m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, transA: Bool = false,
        b: UnsafePointer<Float>, ldb: Int, transB: Bool = false,
        c: UnsafeMutablePointer<Float>, ldc: Int, beta: Float = 0
    ) {
        orochi_sgemm(transA ? trans : noTrans, transB ? trans : noTrans,
                     Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Threads for matrix products: OpenBLAS's and our pool's (the calling thread included).
    public static var threads: Int {
        get { Int(orochi_pool_threads()) }
        set {
            let n = Int32(clamping: max(1, newValue))
            orochi_blas_set_threads(n)
            orochi_pool_set_threads(n)
        }
    }

    /// The OpenBLAS kernels in use, e.g. "SkylakeX" (loads the library if needed).
    public static var core: String { String(cString: orochi_blas_core()) }
    /// Why that core: the user's OPENBLAS_CORETYPE, or Orochi's choice from the CPU's features.
    public static var coreReason: String { String(cString: orochi_blas_core_reason()) }
    /// How long OpenBLAS's idle threads spin before they sleep, and who chose it (blas.c says why).
    public static var idleReason: String { String(cString: orochi_blas_idle_reason()) }
    /// True when the loaded OpenBLAS runs SSE kernels on an AVX-512 CPU (OPENBLAS_CORETYPE=Prescott,
    /// or a library that does not know the CPU): layer products of many tokens then run through
    /// our own AVX-512 multi-token kernel instead of its sgemm.
    public static var isWeak: Bool { orochi_blas_is_weak() != 0 }
    /// Who computes the layers' products of many tokens (tests compare the two ways).
    public enum GEMM: Int32 { case automatic = 0, orochi = 1, openBLAS = 2 }
    public static func setGEMM(_ mode: GEMM) { orochi_set_gemm_mode(mode.rawValue) }
    /// True when the layers' products of many tokens run through our kernel, not OpenBLAS.
    public static var usesOwnGEMM: Bool { orochi_gemm_uses_own() != 0 }
    /// "openblas", "orochi avx512; openblas for …" or "orochi avx512 (OpenBLAS's <core> kernels are
    /// SSE only)": who runs the products of many tokens.
    public static var gemmSummary: String {
        if usesOwnGEMM { return "orochi avx512 (OpenBLAS's \(core) kernels are SSE only)" }
        // A product of no weights takes ours exactly when the shape rule is in force.
        return orochi_gemm_uses_own_for(0, 0) != 0 ? ownProducts : "openblas"
    }
    /// Which products take our kernel beside good OpenBLAS kernels (orochi_gemm_uses_own_for).
    public static let ownProducts = "orochi avx512; openblas for inner sizes above \(OROCHI_PANEL_MAX_K), and for products of "
        + "fewer than \(OROCHI_PANEL_MIN_ROWS) rows with inner sizes of \(OROCHI_SHORT_K) or more and over \(OROCHI_SMALL_PRODUCT) weights"
    /// OpenBLAS's build description, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64".
    public static var configuration: String { String(cString: orochi_blas_config()) }
    /// Nil when OpenBLAS loaded; otherwise what went wrong (e.g. the library is not installed).
    public static var loadError: String? { orochi_blas_load() == 0 ? nil : String(cString: orochi_blas_error()) }

    private static let noTrans: Int32 = 111, trans: Int32 = 112
}

/// Which of our own kernels run: chosen once from the CPU's features.
public enum KernelInfo {
    /// "avx512", "avx2" or "portable".
    public static var isa: String { String(cString: orochi_isa_name(orochi_isa())) }
    /// The CPU features that matter to the kernels, e.g. "avx2 fma f16c avx512f …".
    public static var cpuFeatures: String { String(cString: orochi_cpu_features()) }
    /// Forces a kernel family ("avx512", "avx2", "portable") for tests and measurements; one the
    /// CPU lacks is ignored. Returns the family in force.
    @discardableResult
    public static func force(_ name: String?) -> String {
        let code = name.flatMap { families.firstIndex(of: $0) }.map(Int32.init) ?? -1
        return String(cString: orochi_isa_name(orochi_set_isa(code)))
    }
    /// The families, least first: a family's index is its code in the C kernels (OROCHI_ISA_*).
    public static let families = ["portable", "avx2", "avx512"]
    /// One line for `inspect`, `bench` and `generate --verbose`.
    public static var summary: String {
        "blas: \(BLAS.core) (\(BLAS.coreReason); \(BLAS.idleReason)); orochi kernels: \(isa); layer products of many tokens: \(BLAS.gemmSummary)"
    }

    /// Streaming read bandwidth of this machine in bytes/s: a `megabytes` buffer summed by the
    /// pool's threads, the median of `repetitions`. Larger than the last-level cache for DRAM.
    public static func readBandwidth(megabytes: Int = 512, repetitions: Int = 5) -> Double {
        orochi_read_bandwidth(megabytes << 20, Int32(repetitions))
    }
}

/// Work split over our thread pool from Swift: `body(part, parts)` runs once for every part in
/// 0..<parts, each on one thread (the caller's among them), and returns when all are done. Each
/// part index runs exactly once, so a part may own a slot of scratch memory. Allocates nothing:
/// the pool gets a pointer to the caller's closure, which lives until every part has returned.
public enum Parallel {
    public static func run(parts: Int, _ body: (_ part: Int, _ parts: Int) -> Void) {
        guard parts > 1 else { if parts == 1 { body(0, 1) }; return }
        typealias Body = (Int, Int) -> Void
        withoutActuallyEscaping(body) { body in
            var body = body
            withUnsafeMutablePointer(to: &body) { pointer in
                orochi_pool_run_chunks({ context, index, count in
                    context!.assumingMemoryBound(to: Body.self).pointee(Int(index), Int(count))
                }, pointer, Int32(clamping: parts))
            }
        }
    }
}

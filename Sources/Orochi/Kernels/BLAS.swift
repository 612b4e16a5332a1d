import COpenBLAS

/// Matrix products through OpenBLAS. Weights are stored as Hugging Face `nn.Linear` stores
/// them: row-major [out, in], so a layer computes y = x · Wᵀ.
public enum BLAS {
    /// Many tokens: X[m, k] · W[n, k]ᵀ → Y[m, n] (sgemm). `ldx`/`ldy` allow strided row views.
    @inline(__always)
    public static func matmul(
        _ x: UnsafePointer<Float>, rows m: Int, inner k: Int, ldx: Int? = nil,
        weight w: UnsafePointer<Float>, outputs n: Int,
        into y: UnsafeMutablePointer<Float>, ldy: Int? = nil, accumulate: Bool = false
    ) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
                    Int32(m), Int32(n), Int32(k), 1.0,
                    x, Int32(ldx ?? k), w, Int32(k),
                    accumulate ? 1.0 : 0.0, y, Int32(ldy ?? n))
    }

    /// Below this many weights (2 MiB of f32) a matrix-vector product runs on the calling thread:
    /// OpenBLAS 0.3.21 splits even tiny sgemv calls over its threads, and the hand-off costs more
    /// than the product (measured here: 48×512 takes 1.4 µs on one thread, 114 µs on two).
    public static let singleThreadMatvecLimit = 1 << 19

    /// One token: W[n, k] · x[k] → y[n] (sgemv; sgemm with one row is several times slower).
    @inline(__always)
    public static func matvec(
        _ w: UnsafePointer<Float>, outputs n: Int, inner k: Int, ldw: Int? = nil,
        _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, accumulate: Bool = false
    ) {
        if n * k < singleThreadMatvecLimit {
            Kernels.matvec(w, outputs: n, inner: k, ldw: ldw ?? k, x, into: y, accumulate: accumulate)
            return
        }
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), 1.0,
                    w, Int32(ldw ?? k), x, 1, accumulate ? 1.0 : 0.0, y, 1)
    }

    /// Transposed product: W[k, n]ᵀ · x[k] → y[n], e.g. attention weights times values.
    @inline(__always)
    public static func matvecTransposed(
        _ w: UnsafePointer<Float>, rows k: Int, columns n: Int, ldw: Int? = nil,
        _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>
    ) {
        cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k), Int32(n), 1.0,
                    w, Int32(ldw ?? n), x, 1, 0.0, y, 1)
    }

    /// General row-major product A[m, k] · B[k, n] → C[m, n] with leading dimensions.
    @inline(__always)
    public static func gemm(
        m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, transA: Bool = false,
        b: UnsafePointer<Float>, ldb: Int, transB: Bool = false,
        c: UnsafeMutablePointer<Float>, ldc: Int, beta: Float = 0
    ) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Threads OpenBLAS uses for the following calls.
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }
}

import Foundation
import OrochiKernels

/// A normalisation before a mixer, a feed-forward or the head, over each row's D values:
///
///   RMSNorm (Llama, Mamba, Jamba, Qwen3):  y = x / √(mean(x²) + ε) · w
///   LayerNorm (GPT-2):                     y = (x − mean(x)) / √(var(x) + ε) · w + b
struct Norm {
    let weight: UnsafePointer<Float>        // [D]
    /// LayerNorm's bias [D]; nil: RMSNorm.
    let bias: UnsafePointer<Float>?
    /// The tensor's short name ("input_layernorm", "ln_1"), for traces.
    let name: String

    init(weight: UnsafePointer<Float>, bias: UnsafePointer<Float>? = nil, name: String) {
        self.weight = weight; self.bias = bias; self.name = name
    }

    var kind: String { bias == nil ? "RMSNorm" : "LayerNorm" }

    /// Y[rows, n] = Norm(X[rows, n]).
    func callAsFunction(rows: Int, _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count n: Int, eps: Float) {
        if let bias {
            Kernels.layerNorm(rows: rows, x, weight: weight, bias: bias, into: y, count: n, eps: eps)
        } else {
            Kernels.rmsNorm(rows: rows, x, weight: weight, into: y, count: n, eps: eps)
        }
    }
}

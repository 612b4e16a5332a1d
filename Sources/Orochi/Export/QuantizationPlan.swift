import Foundation
import OrochiKernels

/// What `orochi quantize` writes: one of llama.cpp's file types (`llama_ftype`), by the name
/// `llama-quantize` gives it.
public enum QuantizationTarget: String, CaseIterable, Sendable {
    case f32 = "F32", f16 = "F16", q8_0 = "Q8_0", q4_0 = "Q4_0", q4_1 = "Q4_1", q5_0 = "Q5_0", q5_1 = "Q5_1"
    case q4_K_M = "Q4_K_M", q5_K_M = "Q5_K_M", q6_K = "Q6_K"

    /// `general.file_type`: llama.cpp's LLAMA_FTYPE_MOSTLY_* number.
    public var fileType: UInt32 {
        switch self {
        case .f32: return 0
        case .f16: return 1
        case .q4_0: return 2
        case .q4_1: return 3
        case .q8_0: return 7
        case .q5_0: return 8
        case .q5_1: return 9
        case .q4_K_M: return 15
        case .q5_K_M: return 17
        case .q6_K: return 18
        }
    }

    /// The type of every weight matrix the mixture does not single out.
    public var baseType: WeightType {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .q8_0: return .q8_0
        case .q4_0: return .q4_0
        case .q4_1: return .q4_1
        case .q5_0: return .q5_0
        case .q5_1: return .q5_1
        case .q4_K_M: return .q4_K
        case .q5_K_M: return .q5_K
        case .q6_K: return .q6_K
        }
    }
}

/// Which type each tensor gets: llama.cpp's rules (src/llama-quant.cpp, llama_tensor_get_type) for
/// the file types above, so that our file holds the types `llama-quantize` would choose.
///
/// - Only matrices named `*weight` are quantized; norms, vectors and Mamba's convolution keep
///   their type.
/// - The output matrix (or the embedding, when the output is tied to it) gets Q6_K, since every
///   logit goes through it; Q8_0 when its rows are not whole 256-blocks or the base is Q8_0.
/// - Q4_K_M and Q5_K_M give Q6_K to attn_v and ffn_down in the layers `useMoreBits` picks: the
///   first and last eighth, and every third layer between.
/// - A matrix whose rows are not whole blocks of the chosen type falls back (Q4_K → Q5_0,
///   Q5_K → Q5_1, Q6_K → Q8_0), and to F16 when even that does not divide them.
///
/// Tensors must be presented in llama.cpp's order (`llamaOrder`): the per-layer counters count
/// attn_v and ffn_down tensors as llama-quantize meets them.
public struct QuantizationPlan {
    public let target: QuantizationTarget
    let attentionValueCount: Int
    let feedForwardDownCount: Int
    let tiedEmbeddings: Bool
    private var attentionValueIndex = 0
    private var feedForwardDownIndex = 0

    /// `names`: every tensor of the file to write.
    public init(target: QuantizationTarget, names: [String]) {
        self.target = target
        attentionValueCount = names.filter { Self.isAttentionValue($0) }.count
        feedForwardDownCount = names.filter { $0.contains("ffn_down") }.count
        tiedEmbeddings = !names.contains("output.weight")
    }

    static func isAttentionValue(_ name: String) -> Bool {
        name.contains("attn_v.weight") || name.contains("attn_qkv.weight") || name.contains("attn_kv_b.weight")
    }

    static func useMoreBits(_ layer: Int, _ layers: Int) -> Bool {
        layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2
    }

    /// Whether llama.cpp quantizes this tensor at all (tensor_allows_quantization).
    public static func allowsQuantization(_ name: String, dimensions: Int) -> Bool {
        dimensions >= 2 && name.hasSuffix("weight") && !name.contains("_norm.weight")
            && !name.contains("ffn_gate_inp.weight") && !name.contains("ssm_conv1d")
            && name != "position_embd.weight" && name != "token_types.weight"
    }

    /// The type of the next tensor, `name` with `columns` values per row (ggml's ne[0]); nil when
    /// it keeps the type it has.
    public mutating func type(of name: String, dimensions: Int, columns: Int) -> WeightType? {
        guard Self.allowsQuantization(name, dimensions: dimensions) else { return nil }
        let base = target.baseType
        guard base.isQuantized else { return base }
        var type = base
        if name == "output.weight" || (tiedEmbeddings && name == "token_embd.weight") {
            type = columns % base.blockValues != 0 || base == .q8_0 ? .q8_0 : .q6_K
        } else if name.contains("attn_qkv.weight") {
            if target == .q4_K_M { type = .q5_K } else if target == .q5_K_M { type = .q6_K }
            attentionValueIndex += 1
        } else if Self.isAttentionValue(name) {
            if (target == .q4_K_M || target == .q5_K_M) && Self.useMoreBits(attentionValueIndex, attentionValueCount) { type = .q6_K }
            attentionValueIndex += 1
        } else if name.contains("ffn_down") {
            if (target == .q4_K_M || target == .q5_K_M) && Self.useMoreBits(feedForwardDownIndex, feedForwardDownCount) { type = .q6_K }
            feedForwardDownIndex += 1
        }
        guard columns % type.blockValues != 0 else { return type }
        let fallback: WeightType
        switch type {
        case .q4_K: fallback = .q5_0
        case .q5_K: fallback = .q5_1
        case .q6_K: fallback = .q8_0
        case .q2_K, .q3_K: fallback = .q4_0
        default: fallback = type
        }
        return columns % fallback.blockValues == 0 ? fallback : .f16
    }

    /// llama.cpp's tensor order (llama_model_loader's weights_map): tensors outside the layers by
    /// name, then layer by layer, by name within a layer.
    public static func llamaOrder(_ names: [String]) -> [String] {
        func layer(_ name: String) -> Int {
            guard name.hasPrefix("blk.") else { return -1 }
            let digits = name.dropFirst(4).prefix { $0.isASCII && $0.isNumber }
            return name.dropFirst(4 + digits.count).first == "." ? Int(digits) ?? -1 : -1
        }
        return names.sorted { a, b in
            let (la, lb) = (layer(a), layer(b))
            return la != lb ? la < lb : a.utf8.lexicographicallyPrecedes(b.utf8)
        }
    }
}

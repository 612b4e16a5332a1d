import FuzzCommon
import Foundation
import OrochiKernels

// Raw GGML blocks straight into the quantized kernels (quant.c), no file around them. Byte 0 picks
// the format (one of the ten), byte 1 the shape (bits 0–1: 1–4 rows, bits 2–3: 1–4 blocks per row,
// bits 4–6: 1–5 tokens for the multi-token product); the rest are the blocks (zero-padded or cut to
// rows × rowBytes) and, read as floats, the input of the quantizer. Checked:
// - products: for every kernel family the CPU has, matvec and matvecMulti agree with a double dot
//   product of the dequantized weights (the error of 8-bit inputs, 2 % of Σ|w·x| as in GGUFTests,
//   plus float rounding of the parts a block's product is made of), and with portable's result;
//   skipped (only "no crash") when a weight or a part is not finite (an inf/NaN f16 scale);
// - quantizer: quantizeRows of finite inputs gives finite weights when |x| < 60000 (f16 scales
//   and minima overflow beyond 65504; below that, re-quantizing gives finite weights too), and for
//   the 32-weight formats (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1) it is idempotent on values: quantizing
//   the dequantized weights again dequantizes to the same floats (checked over 750k fuzzed inputs
//   before it was asserted; the bytes may differ, e.g. the scale of an all-zero block).
let types: [WeightType] = [.q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K]

/// Bytes of a block holding its quantized values (the rest: scales, minima). Filling them with 0
/// and with 0xFF gives each weight's offset part (u = 0) and its largest scaled part (u = max).
func quantBytes(_ type: WeightType) -> Range<Int> {
    switch type {
    case .q8_0: return 2..<34
    case .q4_0: return 2..<18
    case .q4_1: return 4..<20
    case .q5_0: return 2..<22
    case .q5_1: return 4..<24
    case .q2_K: return 16..<80
    case .q3_K: return 0..<96
    case .q4_K: return 16..<144
    case .q5_K: return 16..<176
    default: return 0..<192   // Q6_K
    }
}

func dequantize(_ type: WeightType, _ bytes: [UInt8], rows: Int, columns: Int) -> [Float] {
    var out = [Float](repeating: 0, count: rows * columns)
    bytes.withUnsafeBytes { b in
        out.withUnsafeMutableBufferPointer { WeightMatrix(raw: b.baseAddress!, type: type, rows: rows, columns: columns).widen(into: $0.baseAddress!) }
    }
    return out
}

/// Per weight, a bound on the magnitude of the parts the kernels compute it from (d·sc·u and the
/// offset or minimum part): where they cancel, float rounding is relative to them, not to w.
func partBounds(_ type: WeightType, _ bytes: [UInt8], rows: Int, columns: Int) -> [Double] {
    var zero = bytes, full = bytes
    let q = quantBytes(type)
    for b in stride(from: 0, to: bytes.count, by: type.blockBytes) {
        for i in q { zero[b + i] = 0; full[b + i] = type == .q8_0 ? 0x7F : 0xFF }
    }
    let w0 = dequantize(type, zero, rows: rows, columns: columns), w1 = dequantize(type, full, rows: rows, columns: columns)
    return zip(w0, w1).map { abs(Double($1) - Double($0)) + abs(Double($0)) }
}

/// precondition that also prints its message (a release build's precondition drops it).
func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition {
        FileHandle.standardError.write(("quant-blocks: " + message() + "\n").data(using: .utf8)!)
        preconditionFailure()
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzQuantBlocks(_ pointer: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard size >= 2, let data = pointer else { return 0 }
    let type = types[Int(data[0]) % types.count]
    let rows = Int(data[1] & 3) + 1, columns = ((Int(data[1] >> 2) & 3) + 1) * type.blockValues
    let tokens = Int(data[1] >> 4) % 5 + 1
    let count = rows * columns, rowBytes = type.rowBytes(columns)
    var blocks = [UInt8](repeating: 0, count: rows * rowBytes)
    for i in 0..<min(blocks.count, size - 2) { blocks[i] = data[2 + i] }

    // Inputs: token 0 is the payload read as floats (non-finite → 0, clamped to ±1e4), the others a
    // fixed pattern of magnitudes 0.5–1 with mixed signs.
    var raw = [Float](repeating: 0, count: count)
    for i in 0..<min(count, (size - 2) / 4) {
        let o = 2 + 4 * i
        raw[i] = Float(bitPattern: UInt32(data[o]) | UInt32(data[o + 1]) << 8 | UInt32(data[o + 2]) << 16 | UInt32(data[o + 3]) << 24)
        if !raw[i].isFinite { raw[i] = 0 }
    }
    var x = [Float](repeating: 0, count: tokens * columns)
    for t in 0..<tokens {
        for j in 0..<columns {
            x[t * columns + j] = t == 0 ? max(-1e4, min(1e4, raw[j % count])) : (0.5 + Float((j * 7 + t * 13) % 17) / 32) * ((j + t) % 3 == 0 ? -1 : 1)
        }
    }

    // Products against the dequantized weights.
    let w = dequantize(type, blocks, rows: rows, columns: columns)
    let parts = partBounds(type, blocks, rows: rows, columns: columns)
    let checked = w.allSatisfy { $0.isFinite } && parts.allSatisfy { $0.isFinite && $0 < 1e30 }
    var tolerance = [Double](repeating: 0, count: tokens * rows), exact = tolerance
    if checked {
        let size32 = type.blockValues == 256 ? 256 : 32
        // max|x| of each block of the quantized input (per 32, per 256 for the K-quants).
        var amaxes = [Double](repeating: 0, count: tokens * columns / size32)
        for i in 0..<(tokens * columns) { amaxes[i / size32] = max(amaxes[i / size32], Double(abs(x[i]))) }
        for t in 0..<tokens {
            for r in 0..<rows {
                var dot = 0.0, scale = 0.0, inputError = 0.0, rounding = 0.0, tiny = 0.0
                for j in 0..<columns {
                    let wj = Double(w[r * columns + j]), xj = Double(x[t * columns + j])
                    dot += wj * xj
                    scale += abs(wj * xj)
                    // Half a step of the input's 8-bit quantization: max|x| of its block / 254.
                    let amax = amaxes[(t * columns + j) / size32]
                    inputError += abs(wj) * amax / 254
                    rounding += parts[r * columns + j] * amax
                    // A block whose max|x| is below 127 / Float.greatestFiniteMagnitude has an
                    // infinite 1/scale: its 8-bit values are garbage (0 or ±128, as in llama.cpp),
                    // off by up to 2·max|x| each, which only such tiny inputs can afford.
                    if amax < 4e-37 { tiny += parts[r * columns + j] * amax * 2.01 }
                }
                exact[t * rows + r] = dot
                // The last term: a product scaled by a subnormal input scale.
                tolerance[t * rows + r] = 0.02 * scale + 1.01 * inputError + 1e-4 * rounding + tiny + 1e-34 * Double(columns)
            }
        }
    }
    var portable: [Float]? = nil
    defer { KernelInfo.force(nil) }
    blocks.withUnsafeBytes { b in
        let m = WeightMatrix(raw: b.baseAddress!, type: type, rows: rows, columns: columns)
        for family in KernelInfo.families where KernelInfo.force(family) == family {
            var one = [Float](repeating: 0, count: rows), many = [Float](repeating: 0, count: tokens * rows)
            x.withUnsafeBufferPointer { xs in
                m.matvec(xs.baseAddress!, into: &one)
                m.matvecMulti(xs.baseAddress!, rows: tokens, into: &many)
            }
            guard checked else { continue }
            for i in 0..<(tokens * rows) {
                check(abs(Double(many[i]) - exact[i]) <= tolerance[i],
                      "\(family) \(type) matvecMulti[\(i)] = \(many[i]), exact \(exact[i]) ± \(tolerance[i])")
                if i < rows {
                    check(abs(Double(one[i]) - exact[i]) <= tolerance[i],
                          "\(family) \(type) matvec[\(i)] = \(one[i]), exact \(exact[i]) ± \(tolerance[i])")
                }
                if let p = portable?[i] {
                    check(abs(Double(many[i]) - Double(p)) <= tolerance[i],
                          "\(family) \(type) [\(i)] = \(many[i]), portable \(p) ± \(tolerance[i])")
                }
            }
            if portable == nil { portable = many }
        }
    }

    // The quantizer on the payload's floats.
    var q1 = [UInt8](repeating: 0, count: rows * rowBytes), q2 = q1
    let quantized = quantizeRows(type, raw, into: &q1, rows: rows, columns: columns)
    check(quantized, "quantizeRows refused \(type)")
    let y1 = dequantize(type, q1, rows: rows, columns: columns)
    guard raw.allSatisfy({ abs($0) < 60000 }) else { return 0 }
    check(y1.allSatisfy { $0.isFinite }, "\(type): quantizing finite inputs below 60000 gave a non-finite weight")
    let requantized = quantizeRows(type, y1, into: &q2, rows: rows, columns: columns)
    check(requantized, "quantizeRows refused \(type)")
    let y2 = dequantize(type, q2, rows: rows, columns: columns)
    check(y2.allSatisfy { $0.isFinite }, "\(type): re-quantizing gave a non-finite weight")
    // The 32-weight formats only: the K-quants' search for scales lands elsewhere from its own
    // output (Q6_K in a third of the inputs), and their bytes may differ where the values agree.
    if type.blockValues == 32 {
        check(y1 == y2, "\(type): dequantize(quantize(·)) is not idempotent: \(zip(y1, y2).filter { $0 != $1 }.prefix(4))")
    }
    return 0
}

@_cdecl("FuzzQuantBlocks_main")
public func entryPoint(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    Fuzz.main(argc, argv, fuzzQuantBlocks)
}

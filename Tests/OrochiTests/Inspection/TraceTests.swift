import Foundation
import Testing
@testable import Orochi
import OrochiKernels

/// `orochi trace`: the plan of each architecture walks in step with its forward pass, and the
/// totals agree with what `inspect` and `bench` report for the same model.
@Suite(.serialized)          // the profiler is process-wide
struct TraceTests {
    static let fixtures = [("llama", "gqa_linear_f32"), ("llama", "mistral_window_f32"), ("llama", "mqa_llama3_f16"),
                           ("mamba", "k4_auto_tied_f32"), ("mamba", "k3_rank6_tied_f16"),
                           ("jamba", "attn4_moe4top2_untied_f32"), ("jamba", "attn2_moe4top2_tied_f16")]

    @Test(arguments: fixtures, [WeightType.f32, .f16])
    func totalsAgreeWithInspectAndBench(_ fixture: (String, String), kv: WeightType) throws {
        let model = try ModelRegistry.load(directory: Fixtures.directory(fixture.0, fixture.1), options: LoadOptions(kvCache: kv))
        let prompt = [1, 5, 9, 12, 7, 3, 22, 40, 2, 6].map { $0 % model.info.vocabSize }
        let trace = try Trace.run(model: model, prompt: prompt)
        // The weights read are inspect's "bytes read per decoded token" (bench's roofline).
        #expect(trace.weightBytes == model.info.decodeWeightBytes && trace.weightBytes > 0, "\(fixture)")
        // The cache grows by exactly the bytes of one token; a state is rewritten, not grown.
        let p = prompt.count
        #expect(trace.cacheBytesAdded == model.stateBytes(forTokens: p + 1) - model.stateBytes(forTokens: p), "\(fixture)")
        #expect(trace.stateBytesOverwritten == model.stateBytes(forTokens: 0), "\(fixture)")
        // The times are the profiler's: bench's breakdown groups the same timers.
        let profiled = Dictionary(uniqueKeysWithValues: Profiler.seconds.map { ($0.0.description, $0.1) })
        #expect(profiled.keys.sorted() == trace.secondsByComponent.keys.sorted())
        for (component, seconds) in trace.secondsByComponent { #expect(abs(profiled[component]! - seconds) < 1e-9) }
        // One step per timed part: embedding, each layer's, the head.
        #expect(trace.steps.first?.component == "embedding" && trace.steps.last?.component == "lm_head")
        #expect(Set(trace.steps.compactMap(\.layer)) == Set(0..<model.info.layerCount))
        #expect(trace.steps.allSatisfy { $0.seconds >= 0 && $0.multiplyAdds >= 0 })
        #expect(model.position == p + 1)
        #expect(Profiler.log == nil)
    }

    /// Attention's arithmetic grows with the depth; Mamba's does not.
    @Test func attentionGrowsWithDepthMambaDoesNot() throws {
        func macs(_ family: String, _ name: String, depth: Int) throws -> Int {
            let model = try ModelRegistry.load(directory: Fixtures.directory(family, name))
            return try Trace.run(model: model, prompt: (0..<depth).map { ($0 * 7 + 1) % model.info.vocabSize }).multiplyAdds
        }
        #expect(try macs("llama", "gqa_linear_f32", depth: 40) > macs("llama", "gqa_linear_f32", depth: 4))
        #expect(try macs("mamba", "k4_auto_tied_f32", depth: 40) == macs("mamba", "k4_auto_tied_f32", depth: 4))
    }
}

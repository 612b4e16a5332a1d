import FuzzCommon
import Foundation
@testable import Orochi

// Chat templates (they come with downloaded models and GGUF files). Input: one control byte,
// then the template's source. The template is parsed and, when accepted, rendered with a short
// conversation (control bit 0: with a generation prompt; bits 1–3: 0–7 messages). Any
// ChatTemplateError or raise_exception is an answer; a crash, a hang (-timeout) or memory past
// -rss_limit_mb is a finding.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzChatTemplate(_ pointer: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard size >= 1, let pointer else { return 0 }
    let control = pointer[0]
    let source = String(decoding: UnsafeBufferPointer(start: pointer + 1, count: size - 1), as: UTF8.self)
    guard let template = try? ChatTemplate(source) else { return 0 }
    let roles = ["system", "user", "assistant", "user", "assistant", "tool", "user"]
    let messages: [[(String, TemplateValue)]] = (0..<Int((control >> 1) & 7)).map { i in
        [("role", .string(roles[i % roles.count])), ("content", .string(i % 2 == 0 ? "こんにちは <s> {{ x }}" : "a b\nc"))]
    }
    _ = try? template.render(messages: messages, bosToken: "<s>", eosToken: "</s>", addGenerationPrompt: control & 1 == 1)
    return 0
}

@_cdecl("FuzzChatTemplate_main")
public func entryPoint(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    Fuzz.main(argc, argv, fuzzChatTemplate)
}

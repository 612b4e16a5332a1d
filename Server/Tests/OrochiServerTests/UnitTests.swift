import Foundation
import Testing
import Orochi
@testable import OrochiServer

struct JSONTests {
    @Test func parsesEveryKind() throws {
        let v = try JSON.parse(Array(#" {"a": [1, -2, 3.5, 1e3, true, false, null, "x\"\\\/\n\u00e9\ud83d\ude00"], "b": {}} "#.utf8))
        #expect(v["a"] == .array([.int(1), .int(-2), .double(3.5), .double(1000), .bool(true), .bool(false), .null, .string("x\"\\/\né😀")]))
        #expect(v["b"] == .object([]))
        #expect(try JSON.parse(Array("{\"k\": 1, \"k\": 2}".utf8))["k"] == .int(2), "the last of two equal keys wins")
        #expect(try JSON.parse(Array("99999999999999999999".utf8)) == .double(1e20))
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "01", "1.", "-", "\"\\x\"", "\"a\nb\"", "nul", "[1] 2", "{'a': 1}", "1e999", "[\"\u{1}\"]"])
    func refusesInvalid(_ text: String) {
        #expect(throws: JSONSyntaxError.self) { try JSON.parse(Array(text.utf8)) }
    }

    @Test func refusesDeepNestingAndBadUTF8() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONSyntaxError.self) { try JSON.parse(Array(deep.utf8)) }
        #expect(throws: JSONSyntaxError.self) { try JSON.parse([0x22, 0xFF, 0x22]) }
    }

    @Test func serializesCompactlyAndEscapes() throws {
        let v = JSON.object([("s", .string("a\"b\\c\n\u{1}é")), ("n", .null), ("d", .double(-0.25)), ("i", .int(3)),
                             ("nan", .double(.nan)), ("l", .array([.bool(true)]))])
        #expect(v.serialized() == #"{"s":"a\"b\\c\n\u0001é","n":null,"d":-0.25,"i":3,"nan":null,"l":[true]}"#)
        #expect(try JSON.parse(v.bytes)["s"] == .string("a\"b\\c\n\u{1}é"))
    }
}

struct StopMatcherTests {
    /// Feeds the pieces, returns the text sent and whether a stop string ended it.
    func run(_ stops: [String], _ pieces: [String]) -> (String, Bool) {
        var m = StopMatcher(stops)
        var out = ""
        for p in pieces {
            out += m.push(p)
            if m.stopped { return (out, true) }
        }
        return (out + m.flush(), false)
    }

    @Test func cutsBeforeTheStopAcrossPieces() {
        #expect(run(["END"], ["abc E", "N", "D tail"]) == ("abc ", true))
        #expect(run(["END"], ["abc EN", "X"]) == ("abc ENX", false))
        #expect(run(["\n\n", "。"], ["今日は", "晴れ", "。明日"]) == ("今日は晴れ", true))
        #expect(run(["ab", "b"], ["xab"]) == ("x", true), "the earliest match wins")
        #expect(run([], ["a", "b"]) == ("ab", false))
        #expect(run(["xyz"], ["xy"]) == ("xy", false), "a held-back prefix is sent at the end")
    }

    @Test func holdsBackOnlyWhatCouldStartAStop() {
        var m = StopMatcher(["STOP"])
        #expect(m.push("hello S") == "hello ")
        #expect(m.push("T") == "")
        #expect(m.push("x") == "STx")
    }
}

struct RequestParsingTests {
    func completion(_ text: String) throws -> GenerationRequest {
        try GenerationRequest.completion(JSON.parse(Array(text.utf8)))
    }

    func refusal(_ text: String, chat: Bool = false) -> APIError? {
        do {
            let body = try JSON.parse(Array(text.utf8))
            _ = chat ? try GenerationRequest.chat(body) : try GenerationRequest.completion(body)
            return nil
        } catch let error as APIError { return error } catch { return nil }
    }

    @Test func readsFieldsAndIgnoresUnknownOnes() throws {
        let r = try completion(#"{"model": "m", "prompt": [[1, 2, 3]], "max_tokens": 5.0, "temperature": 0, "top_p": 0.5, "top_k": 3, "seed": -1, "stop": "x", "stream": true, "stream_options": {"include_usage": true}, "logprobs": 2, "user": "u", "something_new": {"a": 1}, "n": 1, "presence_penalty": 0}"#)
        #expect(r.model == "m" && r.prompt == .ids([1, 2, 3]) && r.maxTokens == 5 && r.temperature == 0 && r.topP == 0.5 && r.topK == 3)
        #expect(r.seed == UInt64.max && r.stop == ["x"] && r.stream && r.includeUsage && r.logprobs && r.topLogprobs == 2)
        #expect(try completion(#"{"prompt": ["one"]}"#).prompt == .text("one"))
        #expect(try completion(#"{"prompt": "p", "max_tokens": null, "stop": null}"#).maxTokens == nil)
    }

    @Test func namesTheFieldAtFault() {
        let cases: [(String, Bool, String, String)] = [
            (#"{"prompt": "p", "max_tokens": "5"}"#, false, "max_tokens", "must be an integer, got a string"),
            (#"{"prompt": "p", "max_tokens": 1.5}"#, false, "max_tokens", "integer"),
            (#"{"prompt": "p", "max_tokens": -1}"#, false, "max_tokens", "≥ 0"),
            (#"{"prompt": "p", "temperature": "hot"}"#, false, "temperature", "must be a number"),
            (#"{"prompt": "p", "temperature": 2.5}"#, false, "temperature", "between 0 and 2"),
            (#"{"prompt": "p", "top_p": 0}"#, false, "top_p", "(0, 1]"),
            (#"{"prompt": "p", "stream": 1}"#, false, "stream", "boolean"),
            (#"{"prompt": ["a", "b"]}"#, false, "prompt", "only one prompt"),
            (#"{"prompt": [[1], [2]]}"#, false, "prompt", "only one prompt"),
            (#"{"prompt": [1, "a"]}"#, false, "prompt", "must be"),
            (#"{"prompt": 5}"#, false, "prompt", "got a number"),
            (#"{"max_tokens": 5}"#, false, "prompt", "required"),
            (#"{"prompt": "p", "n": 2}"#, false, "n", "only 'n': 1"),
            (#"{"prompt": "p", "echo": true}"#, false, "echo", "not supported"),
            (#"{"prompt": "p", "stop": ["a", "b", "c", "d", "e"]}"#, false, "stop", "at most 4"),
            (#"{"prompt": "p", "stop": [1]}"#, false, "stop", "strings"),
            (#"{"prompt": "p", "frequency_penalty": 0.5}"#, false, "frequency_penalty", "not supported"),
            (#"{"prompt": "p", "logprobs": 50}"#, false, "logprobs", "0 to 20"),
            (#"{"messages": []}"#, true, "messages", "empty"),
            (#"{"messages": "hi"}"#, true, "messages", "must be an array"),
            (#"{"messages": [{"content": "x"}]}"#, true, "messages[0].role", "required"),
            (#"{"messages": [{"role": "user", "content": 3}]}"#, true, "messages[0].content", "must be a string"),
            (#"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}"#, true, "messages[0].content[0].type", "only text content"),
            (#"{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}"#, true, "tools", "not supported"),
            (#"{"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}"#, true, "top_logprobs", "needs 'logprobs'"),
            (#"{"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": "a"}"#, true, "max_completion_tokens", "integer"),
        ]
        for (body, chat, param, message) in cases {
            let error = refusal(body, chat: chat)
            #expect(error?.status == .badRequest, "\(body)")
            #expect(error?.param == param, "\(body): \(String(describing: error))")
            #expect(error?.message.contains(message) == true, "\(body): \(String(describing: error))")
            #expect(error?.message.contains(param) == true || param == "prompt" || param == "n", "\(body): the message names the field")
        }
        #expect(refusal("[1]")?.message.contains("must be a JSON object") == true)
    }

    @Test func chatReadsTextParts() throws {
        let r = try GenerationRequest.chat(JSON.parse(Array(#"{"messages": [{"role": "system", "content": null}, {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "name": "n"}], "max_tokens": 3, "max_completion_tokens": 4, "logprobs": true, "top_logprobs": 1}"#.utf8)))
        #expect(r.prompt == .chat([ChatMessage(role: "system", content: ""), ChatMessage(role: "user", content: "a\nb", name: "n")]))
        #expect(r.maxTokens == 4 && r.logprobs && r.topLogprobs == 1)
    }
}

import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Orochi
import ServiceLifecycle
import Testing
@testable import OrochiServer

/// The API through Hummingbird's test client (the router, in process), on the shipped models.
struct HTTPTests {
    let prompt = "ファイルを開くには"

    @Test func modelsHealthAndUnknownRoutes() async throws {
        let server = try ServerFixtures.server()
        try await ServerFixtures.app(server).test(.router) { client in
            let models = try await client.get("/v1/models")
            #expect(models.status == .ok)
            #expect(models.json["object"] == .string("list"))
            let first = models.json["data"]?.array?.first
            #expect(first?["id"] == .string("orochi-ja-llama") && first?["object"] == .string("model") && first?["max_model_len"] == .int(1024))
            #expect(try await client.get("/v1/models/orochi-ja-llama").json["id"] == .string("orochi-ja-llama"))
            let missing = try await client.get("/v1/models/nope")
            #expect(missing.status == .notFound && missing.json.errorCode == "model_not_found")
            let health = try await client.get("/health")
            #expect(health.status == .ok && health.json["status"] == .string("ok"))
            let route = try await client.get("/v1/nothing")
            #expect(route.status == .notFound && route.json.errorCode == "not_found" && route.json["error"]?["type"] == .string("invalid_request_error"))
            #expect(try await client.get("/v1/completions").status == .notFound, "GET on a POST route")
        }
    }

    /// Greedy output over HTTP is what the library's Generator (`orochi generate`) produces for
    /// the same prompt: the same ids, so the same text and token counts.
    @Test func greedyCompletionEqualsGenerate() async throws {
        let directory = ServerFixtures.model(ServerFixtures.llama)
        let model = try ModelRegistry.load(directory: directory)
        let tokenizer = try loadTokenizer(modelDirectory: directory)
        var stops = Set(ModelRegistry.eosTokenIds(directory: directory))
        if let eos = tokenizer.eosTokenId { stops.insert(eos) }
        let promptIds = tokenizer.encode(prompt, addSpecialTokens: true)
        let generator = Generator(model: model, sampler: Sampler(settings: .init(temperature: 0), vocabSize: model.info.vocabSize), stopTokens: stops)
        let (ids, _) = try generator.generate(prompt: promptIds, maxTokens: 40) { _ in true }
        let expected = tokenizer.decode(ids.filter { !stops.contains($0) })
        #expect(!expected.isEmpty)

        let server = try ServerFixtures.server()
        try await ServerFixtures.app(server).test(.router) { client in
            let r = try await client.post("/v1/completions", #"{"model": "orochi-ja-llama", "prompt": "\#(prompt)", "max_tokens": 40, "temperature": 0}"#)
            #expect(r.status == .ok, "\(r.text)")
            let body = r.json
            #expect(body["object"] == .string("text_completion") && body["model"] == .string("orochi-ja-llama"))
            #expect(body["id"]?.string?.hasPrefix("cmpl-") == true && body["created"]?.int != nil)
            #expect(body.choice["text"] == .string(expected))
            #expect(body.choice["index"] == .int(0) && body.choice["logprobs"] == .null)
            #expect(body.choice["finish_reason"] == .string(ids.count < 40 ? "stop" : "length"))
            #expect(body["usage"] == .object([("prompt_tokens", .int(promptIds.count)), ("completion_tokens", .int(ids.count)),
                                              ("total_tokens", .int(promptIds.count + ids.count))]))
            // The same prompt as token ids, and streamed: the same text.
            let byIds = try await client.post("/v1/completions", #"{"prompt": \#(promptIds), "max_tokens": 40, "temperature": 0}"#)
            #expect(byIds.json.choice["text"] == .string(expected))
            let streamed = try await client.post("/v1/completions", #"{"prompt": "\#(prompt)", "max_tokens": 40, "temperature": 0, "stream": true}"#)
            #expect(streamed.status == .ok && streamed.headers[.contentType] == "text/event-stream")
            let (chunks, done) = streamed.events
            #expect(done, "the stream ends with data: [DONE]")
            #expect(chunks.map { $0.choice["text"]?.string ?? "" }.joined() == expected)
            #expect(chunks.allSatisfy { $0["object"] == .string("text_completion") && $0["id"] == chunks[0]["id"] })
            #expect(chunks.dropLast().allSatisfy { $0.choice["finish_reason"] == .null })
            #expect(chunks.last?.choice["finish_reason"] == body.choice["finish_reason"])
            #expect(chunks.last?["usage"]?.counts == body["usage"]?.counts, "usage in the last chunk")
            // Several at once (batched together by the engine): each the same text.
            let texts = try await withThrowingTaskGroup(of: String.self) { group in
                for i in 0..<4 {
                    group.addTask {
                        let stream = i % 2 == 1
                        let r = try await client.post("/v1/completions", #"{"prompt": "\#(prompt)", "max_tokens": 40, "temperature": 0, "stream": \#(stream)}"#)
                        return stream ? r.events.chunks.map { $0.choice["text"]?.string ?? "" }.joined() : (r.json.choice["text"]?.string ?? "")
                    }
                }
                return try await group.reduce(into: [String]()) { $0.append($1) }
            }
            #expect(texts == Array(repeating: expected, count: 4))
        }
    }

    @Test func seededSamplingIsReproducible() async throws {
        let server = try ServerFixtures.server()
        try await ServerFixtures.app(server).test(.router) { client in
            let body = #"{"prompt": "\#(prompt)", "max_tokens": 24, "temperature": 0.9, "top_p": 0.95, "top_k": 40, "seed": 7}"#
            let a = try await client.post("/v1/completions", body).json.choice["text"]
            let b = try await client.post("/v1/completions", body).json.choice["text"]
            #expect(a == b && a?.string?.isEmpty == false)
        }
    }

    @Test func chatInThePlainFormat() async throws {
        let server = try ServerFixtures.server()
        let messages = #"[{"role": "system", "content": "日本語で"}, {"role": "user", "content": "こんにちは"}]"#
        try await ServerFixtures.app(server).test(.router) { client in
            let r = try await client.post("/v1/chat/completions", #"{"messages": \#(messages), "max_tokens": 12, "temperature": 0}"#)
            #expect(r.status == .ok, "\(r.text)")
            let body = r.json
            #expect(body["object"] == .string("chat.completion") && body["id"]?.string?.hasPrefix("chatcmpl-") == true)
            #expect(body.choice["message"]?["role"] == .string("assistant"))
            let text = body.choice["message"]?["content"]?.string ?? ""
            let promptIds = server.models[0].encodeCompletion("system: 日本語で\nuser: こんにちは\nassistant:")
            #expect(body["usage"]?["prompt_tokens"] == .int(promptIds.count))
            #expect(!text.contains("\nuser:"), "the plain format stops before the next user line")

            let streamed = try await client.post("/v1/chat/completions",
                                                 #"{"messages": \#(messages), "max_tokens": 12, "temperature": 0, "stream": true, "stream_options": {"include_usage": true}}"#)
            let (chunks, done) = streamed.events
            #expect(done)
            #expect(chunks.first?.choice["delta"] == .object([("role", .string("assistant")), ("content", .string(""))]))
            #expect(chunks.allSatisfy { $0["object"] == .string("chat.completion.chunk") })
            let content = chunks.compactMap { $0.choice["delta"]?["content"]?.string }.joined()
            #expect(content == text, "streamed text equals the non-streamed text")
            // The finish chunk (with usage), then OpenAI's usage chunk with no choices.
            let finish = chunks[chunks.count - 2], usage = chunks[chunks.count - 1]
            #expect(finish.choice["finish_reason"] == body.choice["finish_reason"] && finish["usage"]?.counts == body["usage"]?.counts)
            #expect(usage["choices"] == .array([]) && usage["usage"] == finish["usage"])
        }
    }

    @Test func stopStringsEndTheText() async throws {
        let server = try ServerFixtures.server()
        try await ServerFixtures.app(server).test(.router) { client in
            let base = #""prompt": "\#(prompt)", "max_tokens": 40, "temperature": 0"#
            let full = try await client.post("/v1/completions", "{\(base)}").json.choice["text"]?.string ?? ""
            let scalars = Array(full.unicodeScalars)
            #expect(scalars.count > 8, "\(full)")
            // A stop string from the middle of the greedy text: the text before its first occurrence.
            let stop = String(String.UnicodeScalarView(scalars[5..<7]))
            let before = String(full[..<full.range(of: stop)!.lowerBound])
            let stopJSON = JSON.string(stop).serialized()
            let r = try await client.post("/v1/completions", #"{\#(base), "stop": [\#(stopJSON), "never-appears"]}"#)
            #expect(r.json.choice["text"] == .string(before) && r.json.choice["finish_reason"] == .string("stop"))
            let tokens = r.json["usage"]?["completion_tokens"]?.int ?? 0
            #expect(tokens > 0 && tokens < 40, "generation stopped at the stop string")
            let s = try await client.post("/v1/completions", #"{\#(base), "stop": \#(stopJSON), "stream": true}"#).events
            #expect(s.done && s.chunks.map { $0.choice["text"]?.string ?? "" }.joined() == before)
            #expect(s.chunks.last?.choice["finish_reason"] == .string("stop"))
            #expect(await waitUntil { server.models[0].engine.isIdle })
        }
    }

    @Test func logprobsWithAlternatives() async throws {
        let server = try ServerFixtures.server()
        try await ServerFixtures.app(server).test(.router) { client in
            let r = try await client.post("/v1/completions", #"{"prompt": "\#(prompt)", "max_tokens": 10, "temperature": 0, "logprobs": 1}"#)
            let lp = r.json.choice["logprobs"]
            let tokens = lp?["tokens"]?.array?.compactMap(\.string) ?? []
            let values = lp?["token_logprobs"]?.array?.compactMap(\.double) ?? []
            #expect(tokens.joined() == r.json.choice["text"]?.string, "the tokens' text is the completion's")
            #expect(tokens.count == values.count && values.count >= 1 && values.allSatisfy { $0 <= 0 })
            // Greedy: each step's most likely alternative is the sampled token, with its value.
            let top = lp?["top_logprobs"]?.array ?? []
            #expect(top.count == tokens.count)
            for (i, alternatives) in top.enumerated() {
                guard case let .object(members)? = Optional(alternatives), members.count == 1 else {
                    Issue.record("top_logprobs[\(i)]: \(alternatives)"); continue
                }
                #expect(members[0].1.double == values[i])
            }
            let offsets = lp?["text_offset"]?.array?.compactMap(\.int) ?? []
            #expect(offsets.first == 0 && offsets == offsets.sorted())

            let chat = try await client.post("/v1/chat/completions",
                                             #"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "temperature": 0, "logprobs": true, "top_logprobs": 2}"#)
            let content = chat.json.choice["logprobs"]?["content"]?.array ?? []
            #expect(!content.isEmpty && content.allSatisfy { ($0["logprob"]?.double ?? 1) <= 0 })
            for token in content {
                let alternatives = token["top_logprobs"]?.array ?? []
                let values = alternatives.compactMap { $0["logprob"]?.double }
                #expect(alternatives.count == 2 && values == values.sorted(by: >))
                #expect(values.first == token["logprob"]?.double, "greedy: the likeliest is the sampled token")
                #expect(alternatives.allSatisfy { $0["bytes"]?.array?.count == $0["token"]?.string?.utf8.count })
            }
            let none = try await client.post("/v1/completions", #"{"prompt": "\#(prompt)", "max_tokens": 3, "temperature": 0, "logprobs": 0}"#)
            #expect(none.json.choice["logprobs"]?["top_logprobs"] == .null)
            #expect(content.compactMap { $0["token"]?.string }.joined() == chat.json.choice["message"]?["content"]?.string)
        }
    }

    @Test func errorsAreOpenAIShaped() async throws {
        var limits = ServerLimits()
        limits.maxTokensLimit = 100
        let server = try ServerFixtures.server(limits: limits)
        try await ServerFixtures.app(server).test(.router) { client in
            func check(_ body: String, _ status: HTTPResponse.Status, _ code: String?, _ contains: String, chat: Bool = false) async throws {
                let r = try await client.post(chat ? "/v1/chat/completions" : "/v1/completions", body)
                #expect(r.status == status, "\(body): \(r.text)")
                #expect(r.json.errorCode == code, "\(body): \(r.text)")
                #expect(r.json.errorMessage.contains(contains), "\(body): \(r.text)")
                #expect(r.json["error"]?["type"]?.string != nil && r.headers[.contentType] == "application/json")
            }
            try await check("{\"prompt\": ", .badRequest, "invalid_json", "not valid JSON")
            try await check("", .badRequest, "invalid_json", "not valid JSON")
            try await check(#"{"prompt": "p", "max_tokens": "ten"}"#, .badRequest, "invalid_value", "'max_tokens' must be an integer")
            try await check(#"{"prompt": ["a", "b"]}"#, .badRequest, "invalid_value", "only one prompt")
            try await check(#"{"prompt": "p", "n": 3}"#, .badRequest, "invalid_value", "'n': 1")
            try await check(#"{"prompt": "p", "model": "gpt-4"}"#, .notFound, "model_not_found", "gpt-4")
            let long = Array(repeating: 5, count: 2000)
            try await check(#"{"prompt": \#(long)}"#, .badRequest, "context_length_exceeded", "2000 tokens")
            try await check(#"{"prompt": \#(long)}"#, .badRequest, "context_length_exceeded", "1024")
            try await check(#"{"prompt": "p", "max_tokens": 101}"#, .badRequest, "invalid_value", "at most 100")
            try await check(#"{"prompt": [1, 99999]}"#, .badRequest, "invalid_value", "outside the vocabulary")
            try await check(#"{"prompt": []}"#, .badRequest, "invalid_value", "empty")
            try await check(#"{"messages": [{"role": "user", "content": "x"}], "temperature": -1}"#, .badRequest, "invalid_value", "'temperature'", chat: true)
            // Fields this server does not know are ignored; without "model", the only one is used.
            let ok = try await client.post("/v1/completions", #"{"prompt": "p", "max_tokens": 2, "logit_bias": {}, "user": "x", "metadata": {"a": [1]}, "future_field": true}"#)
            #expect(ok.status == .ok && ok.json["model"] == .string("orochi-ja-llama"))
        }
    }

    @Test func twoModelsNeedAModelName() async throws {
        let server = try ServerFixtures.server([ServerFixtures.llama, ServerFixtures.mamba])
        try await ServerFixtures.app(server).test(.router) { client in
            #expect(try await client.get("/v1/models").json["data"]?.array?.count == 2)
            let none = try await client.post("/v1/completions", #"{"prompt": "p"}"#)
            #expect(none.status == .badRequest && none.json.errorParam == "model")
            let mamba = try await client.post("/v1/completions", #"{"prompt": "p", "model": "orochi-ja-mamba", "max_tokens": 3}"#)
            #expect(mamba.status == .ok && mamba.json["model"] == .string("orochi-ja-mamba"))
            #expect(try await client.get("/v1/models/orochi-ja-mamba").json["max_model_len"] == .null, "no context limit")
        }
    }

    @Test func apiKey() async throws {
        let server = try ServerFixtures.server(apiKey: "sk-test-123")
        try await ServerFixtures.app(server).test(.router) { client in
            let missing = try await client.get("/v1/models")
            #expect(missing.status == .unauthorized && missing.json.errorCode == "invalid_api_key" && missing.headers[.wwwAuthenticate] == "Bearer")
            let wrong = try await client.post("/v1/completions", #"{"prompt": "p"}"#, headers: [.authorization: "Bearer sk-test-124"])
            #expect(wrong.status == .unauthorized && wrong.json.errorMessage.contains("incorrect"))
            #expect(try await client.get("/v1/models", headers: [.authorization: "sk-test-123"]).status == .unauthorized, "Bearer is required")
            #expect(try await client.get("/v1/models", headers: [.authorization: "Bearer sk-test-12"]).status == .unauthorized, "a prefix of the key")
            #expect(try await client.get("/v1/models", headers: [.authorization: "Bearer sk-test-1234"]).status == .unauthorized, "the key and more")
            #expect(try await client.get("/v1/models", headers: [.authorization: "Bearer "]).status == .unauthorized)
            #expect(try await client.get("/v1/models", headers: [.authorization: "Bearer sk-test-123"]).status == .ok)
            #expect(try await client.get("/v1/models", headers: [.authorization: "bearer sk-test-123"]).status == .ok, "the scheme's case is free")
            #expect(try await client.get("/health").status == .ok, "health needs no key")
            #expect(try await client.execute(uri: "/health", method: .head).status != .unauthorized, "nor HEAD /health")
            #expect(try await client.get("/metrics").status == .unauthorized, "metrics need the key unless --public-metrics")
            #expect(try await client.get("/metrics", headers: [.authorization: "Bearer sk-test-123"]).status == .ok)
            // An unknown route says nothing about what exists without the key.
            #expect(try await client.get("/v1/nothing").status == .unauthorized)
        }
        var limits = ServerLimits()
        limits.publicMetrics = true
        let publicMetrics = try ServerFixtures.server(limits: limits, apiKey: "sk-test-123")
        try await ServerFixtures.app(publicMetrics).test(.router) { client in
            let metrics = try await client.get("/metrics"), models = try await client.get("/v1/models")
            #expect(metrics.status == .ok, "--public-metrics")
            #expect(models.status == .unauthorized)
        }
    }

    /// Every spelling of a guarded route that the router might resolve to it needs the key:
    /// repeated slashes, dot segments, percent-encoding, trailing slashes, case, HEAD and OPTIONS.
    /// `//v1/models` and `POST //v1/completions` used to answer without one.
    @Test func apiKeyGuardsEverySpellingOfEveryRoute() async throws {
        let server = try ServerFixtures.server(apiKey: "sk-test-123")
        let body = #"{"prompt": "p", "max_tokens": 2}"#
        let spellings = ["//v1/models", "///v1/models", "/v1//models", "/v1/models/", "/./v1/models", "/v1/./models",
                         "/x/../v1/models", "/v1/x/../models", "/%76%31/models", "/v1/%6Dodels", "/V1/MODELS", "/v1/Models",
                         "/v1/models/orochi-ja-llama", "//v1/models/orochi-ja-llama", "/v1/models?x=1", "//v1/models?",
                         "/health/../v1/models", "/health//../v1/models", "/metrics", "//metrics", "/metrics/", "//health",
                         "/health/", "/%68ealth", "/HEALTH"]
        let posts = ["/v1/completions", "//v1/completions", "/v1//completions", "/v1/completions/", "/./v1/completions",
                     "/v1/chat/completions", "//v1/chat/completions", "/v1/chat//completions", "/v1/chat/./completions",
                     "/%76%31/completions", "/health/../v1/completions", "/health"]
        try await ServerFixtures.app(server).test(.router) { client in
            for path in spellings {
                for method: HTTPRequest.Method in [.get, .head, .options, .post, .put, .delete, .patch] {
                    let r = try await client.execute(uri: path, method: method, headers: [.contentType: "application/json"],
                                                     body: method == .post ? ByteBuffer(string: body) : nil)
                    #expect(r.status == .unauthorized, "\(method) \(path) without a key: \(r.status)")
                }
            }
            for path in posts {
                let r = try await client.post(path, body)
                #expect(r.status == .unauthorized, "POST \(path) without a key: \(r.status)")
                let wrong = try await client.post(path, body, headers: [.authorization: "Bearer sk-test-12"])
                #expect(wrong.status == .unauthorized, "POST \(path) with a wrong key: \(wrong.status)")
            }
            // With the key, the router's own resolution still answers (these are not refused as such).
            let ok = try await client.get("//v1/models", headers: [.authorization: "Bearer sk-test-123"])
            #expect(ok.status != .unauthorized)
        }
    }

    @Test func bodyLimit() async throws {
        var limits = ServerLimits()
        limits.maxBodyBytes = 1024
        let server = try ServerFixtures.server(limits: limits)
        try await ServerFixtures.app(server).test(.router) { client in
            let big = #"{"prompt": "\#(String(repeating: "a", count: 2000))"}"#
            let r = try await client.post("/v1/completions", big)
            #expect(r.status == .contentTooLarge && r.json.errorCode == "request_too_large" && r.json.errorMessage.contains("1024"))
            #expect(try await client.post("/v1/completions", #"{"prompt": "a", "max_tokens": 1}"#).status == .ok)
        }
    }

    /// maxQueue 0 and one sequence running: the next request is refused with 429 and Retry-After.
    @Test func queueFullIs429() async throws {
        let served = try ServerFixtures.served(ServerFixtures.mamba, engine: .init(maxBatch: 1, maxQueue: 0))
        let server = OpenAIServer(models: [served])
        var long: AsyncThrowingStream<CompletionEvent, Error>? = try served.engine.submit(
            CompletionJob(prompt: [1, 5, 9], maxTokens: 1_000_000, sampling: .init(temperature: 0), stopTokens: []))
        #expect(await waitUntil { served.engine.stats.running == 1 })
        try await ServerFixtures.app(server).test(.router) { client in
            let r = try await client.post("/v1/completions", #"{"prompt": "p", "max_tokens": 2}"#)
            #expect(r.status == .tooManyRequests && r.headers[.retryAfter] == "1" && r.json.errorCode == "queue_full", "\(r.text)")
            let metrics = try await client.get("/metrics").text
            #expect(metrics.contains(#"orochi_requests_total{endpoint="/v1/completions",status="429"} 1"#))
            #expect(metrics.contains(#"orochi_running_sequences{model="orochi-ja-mamba"} 1"#), "\(metrics)")
        }
        _ = long
        long = nil   // dropping the stream cancels the sequence
        #expect(await waitUntil { served.engine.isIdle })
        #expect(served.engine.stats.generatedTokens < 1_000_000)
    }

    /// A streaming request whose task is cancelled (its client gone) frees its sequence.
    @Test func cancellingAStreamFreesItsSequence() async throws {
        let (served, server) = try ServerFixtures.endlessStreamServer()
        try await ServerFixtures.app(server).test(.router) { client in
            let request = Task {
                try await client.post("/v1/completions", #"{"prompt": "p", "max_tokens": 1000000, "ignore_eos": true, "stream": true}"#)
            }
            #expect(await waitUntil { served.engine.stats.generatedTokens > 10 })
            request.cancel()
            _ = try? await request.value
            #expect(await waitUntil { served.engine.isIdle && server.inFlightCount == 0 })
            let generated = served.engine.stats.generatedTokens
            #expect(generated < 1_000_000)
            try await Task.sleep(for: .milliseconds(50))
            #expect(served.engine.stats.generatedTokens == generated, "nothing runs after the cancellation")
        }
    }

    /// Draining, as SIGTERM starts it through the ServiceGroup: new requests get 503, the running
    /// stream finishes whole, and the drain service returns only then.
    @Test func drainingRefusesNewRequestsAndFinishesRunningOnes() async throws {
        let server = try ServerFixtures.server([ServerFixtures.mamba])
        let engine = server.models[0].engine
        try await ServerFixtures.app(server).test(.router) { client in
            let running = Task {
                try await client.post("/v1/completions", #"{"prompt": "p", "max_tokens": 1500, "ignore_eos": true, "stream": true}"#)
            }
            #expect(await waitUntil { engine.stats.generatedTokens > 10 })
            let started = Started()
            let group = ServiceGroup(configuration: .init(services: [server.drainService, started], logger: Logger(label: "test")))
            let drain = Task { try await group.run() }
            #expect(await waitUntil { started.value })
            await group.triggerGracefulShutdown()
            #expect(await waitUntil { server.isDraining })
            let refused = try await client.post("/v1/completions", #"{"prompt": "p"}"#)
            #expect(refused.status == .serviceUnavailable && refused.json.errorCode == "shutting_down")
            #expect(try await client.get("/health").status == .serviceUnavailable)
            let response = try await running.value
            let (chunks, done) = response.events
            #expect(done && chunks.last?["usage"]?["completion_tokens"] == .int(1500))
            try await drain.value
            #expect(server.isDrained)
        }
    }

    /// A service that says when its group runs.
    final class Started: Service, @unchecked Sendable {
        private let lock = NSLock()
        private var started = false
        var value: Bool { lock.withLock { started } }
        func run() async throws {
            lock.withLock { started = true }
            try? await gracefulShutdown()
        }
    }

    /// The engine's prompt cache: a repeated prompt is resumed, not computed, and says so in
    /// usage.prompt_tokens_details.cached_tokens and the metrics; the text is the same.
    @Test func promptCacheShowsInUsageAndMetrics() async throws {
        let server = try ServerFixtures.server()
        try await ServerFixtures.app(server).test(.router) { client in
            let body = #"{"prompt": "\#(prompt)について", "max_tokens": 8, "temperature": 0}"#
            let first = try await client.post("/v1/completions", body).json
            let second = try await client.post("/v1/completions", body).json
            #expect(first["usage"]?["prompt_tokens_details"] == nil)
            let cached = second["usage"]?["prompt_tokens_details"]?["cached_tokens"]?.int ?? 0
            #expect(cached > 0 && cached <= (second["usage"]?["prompt_tokens"]?.int ?? 0), "\(second)")
            #expect(first.choice["text"] == second.choice["text"])
            let metrics = try await client.get("/metrics").text
            #expect(metrics.contains(#"orochi_cached_prompt_tokens_total{model="orochi-ja-llama"} \#(cached)"#), "\(metrics)")
        }
    }

    @Test func metricsAfterRequests() async throws {
        let server = try ServerFixtures.server()
        try await ServerFixtures.app(server).test(.router) { client in
            _ = try await client.post("/v1/completions", #"{"prompt": "\#(prompt)", "max_tokens": 5, "temperature": 0}"#)
            _ = try await client.post("/v1/completions", #"{"prompt": 1}"#)
            _ = try await client.get("/made/up/path")
            let r = try await client.get("/metrics")
            #expect(r.status == .ok && r.headers[.contentType]?.hasPrefix("text/plain") == true)
            let text = r.text
            for line in [
                #"orochi_requests_total{endpoint="/v1/completions",status="200"} 1"#,
                #"orochi_requests_total{endpoint="/v1/completions",status="400"} 1"#,
                #"orochi_requests_total{endpoint="other",status="404"} 1"#,
                #"orochi_prompt_tokens_total{model="orochi-ja-llama"}"#,
                #"orochi_cached_prompt_tokens_total{model="orochi-ja-llama"} 0"#,
                #"orochi_completion_tokens_total{model="orochi-ja-llama"} 5"#,
                #"orochi_queue_depth{model="orochi-ja-llama"} 0"#,
                #"orochi_running_sequences{model="orochi-ja-llama"}"#,
                #"orochi_batch_size{model="orochi-ja-llama"}"#,
                #"orochi_time_to_first_token_seconds_count{model="orochi-ja-llama"} 1"#,
                #"orochi_inter_token_latency_seconds_count{model="orochi-ja-llama"} 4"#,
            ] {
                #expect(text.contains(line), "\(line)\n\(text)")
            }
        }
    }
}

/// Models with a chat template in their tokenizer_config.json.
struct ChatTemplateServingTests {
    static func config(_ template: String) -> String {
        JSON.object([("bos_token", .string("<s>")), ("eos_token", .string("</s>")), ("add_bos_token", .bool(true)),
                     ("chat_template", .string(template))]).serialized()
    }

    @Test func chatUsesTheModelsTemplate() async throws {
        let template = "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system messages, please') }}{% endif %}"
            + "[{{ m.role }}] {{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}"
        let linked = try LinkedModel("templated", tokenizerConfig: Self.config(template))
        let served = try ServerFixtures.served("templated", directory: linked.url)
        guard case .template = served.chat.format else { Issue.record("no template read"); return }
        let server = OpenAIServer(models: [served])
        // The rendered text's <s> and </s> are the BOS and EOS ids, the rest encoded as text.
        let tokenizer = try loadTokenizer(modelDirectory: linked.url)
        let expected = [tokenizer.bosTokenId!] + tokenizer.encode("[user] こんにちは", addSpecialTokens: false) + [tokenizer.eosTokenId!]
            + tokenizer.encode("[assistant] ", addSpecialTokens: false)
        #expect(try served.encodeChat([ChatMessage(role: "user", content: "こんにちは")]) == expected)
        // Special tokens in a message are cut in one pass (hardening issue, class 3): 60,000 × <s>
        // and 100,000 × </s>, and the two interleaved with text, which the search of the rest for
        // every token at every cut made quadratic (no answer in 20 s). The bound below catches a hang,
        // it measures nothing.
        let started = Date()
        for (content, count) in [(String(repeating: "<s>", count: 60_000), 60_000), (String(repeating: "</s>", count: 100_000), 100_000),
                                 (String(repeating: "a<s>b</s>", count: 30_000), 60_000)] {
            let ids = try served.encodeChat([ChatMessage(role: "user", content: content)])
            let specials = ids.filter { $0 == tokenizer.bosTokenId! || $0 == tokenizer.eosTokenId! }.count
            #expect(specials == count + 2, "\(count): \(specials) special ids")     // with the template's own BOS and EOS
        }
        #expect(Date().timeIntervalSince(started) < 60, "special tokens cut in \(Date().timeIntervalSince(started)) s")
        try await ServerFixtures.app(server).test(.router) { client in
            let r = try await client.post("/v1/chat/completions", #"{"model": "templated", "messages": [{"role": "user", "content": "こんにちは"}], "max_tokens": 4}"#)
            #expect(r.status == .ok && r.json["usage"]?["prompt_tokens"] == .int(expected.count), "\(r.text)")
            let raised = try await client.post("/v1/chat/completions", #"{"messages": [{"role": "system", "content": "x"}]}"#)
            #expect(raised.status == .badRequest && raised.json.errorMessage == "no system messages, please" && raised.json.errorCode == "chat_template_error")
        }
    }

    @Test func anUnsupportedTemplateIsRefusedAtStart() throws {
        let linked = try LinkedModel("fancy", tokenizerConfig: Self.config("{% for m in messages %}{{ m | tojson }}{% endfor %}"))
        do {
            _ = try ServerFixtures.served("fancy", directory: linked.url)
            Issue.record("loaded")
        } catch let error as ChatTemplateError {
            #expect(error.message.contains("fancy") && error.message.contains("filter 'tojson'"), "\(error.message)")
        }
    }
}

import Foundation
import Prometheus

/// The server's Prometheus metrics (docs/server.md lists them). Counters and histograms are
/// updated by the requests; the engine's gauges are read from its stats at each scrape.
public final class ServerMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()

    /// The endpoints a request is counted under; anything else is "other" (a client cannot grow
    /// the label set with made-up paths).
    static let endpoints: Set<String> = ["/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics"]

    static let latencyBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

    public init() {}

    /// orochi_NAME_UNIT, with its help line.
    private static func name(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "orochi", metricName: name, unitName: unit, helpText: help)
    }

    func request(endpoint: String, status: Int) {
        let label = Self.endpoints.contains(endpoint) ? endpoint : "other"
        registry.makeCounter(descriptor: Self.name("requests", "total", "HTTP requests answered, by endpoint and status code."), labels: [("endpoint", label), ("status", String(status))]).increment()
    }

    func promptTokens(model: String, total: Int, cached: Int) {
        registry.makeCounter(descriptor: Self.name("prompt_tokens", "total", "Prompt tokens of the completions started."), labels: [("model", model)]).increment(by: Int64(total))
        registry.makeCounter(descriptor: Self.name("cached_prompt_tokens", "total", "Prompt tokens resumed from the prompt cache instead of computed."), labels: [("model", model)]).increment(by: Int64(cached))
    }

    func completionTokens(model: String, count: Int) {
        registry.makeCounter(descriptor: Self.name("completion_tokens", "total", "Tokens generated for the completions answered."), labels: [("model", model)]).increment(by: Int64(count))
    }

    func timeToFirstToken(model: String, seconds: Double) {
        registry.makeValueHistogram(descriptor: Self.name("time_to_first_token", "seconds", "From the request's arrival to its first generated token."), labels: [("model", model)], buckets: Self.latencyBuckets).record(seconds)
    }

    func interTokenLatency(model: String, seconds: Double) {
        registry.makeValueHistogram(descriptor: Self.name("inter_token_latency", "seconds", "Between two generated tokens of one completion."), labels: [("model", model)], buckets: Self.latencyBuckets).record(seconds)
    }

    /// The Prometheus text, the engines' gauges read now.
    func scrape(models: [ServedModel]) -> [UInt8] {
        for m in models {
            let stats = m.engine.stats
            let labels = [("model", m.id)]
            registry.makeGauge(descriptor: Self.name("queue_depth", "", "Requests waiting for a free sequence slot."), labels: labels)
                .set(Double(stats.queued))
            registry.makeGauge(descriptor: Self.name("running_sequences", "", "Sequences being generated."), labels: labels)
                .set(Double(stats.running))
            registry.makeGauge(descriptor: Self.name("batch_size", "", "Sequences decoded together in the engine's last step."), labels: labels)
                .set(Double(stats.lastBatchSize))
            registry.makeGauge(descriptor: Self.name("engine_steps", "", "Steps the engine has run (a counter, read from the engine)."), labels: labels)
                .set(Double(stats.steps))
        }
        return registry.emitToBuffer()
    }
}

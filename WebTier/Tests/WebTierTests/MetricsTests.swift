import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import RedisTesting
import Testing

@testable import WebTierApp

/// `/metrics`: Prometheus text that a scraper accepts, whose counters move with traffic.
@Suite(.timeLimit(.minutes(2))) struct MetricsTests {
    let prefix = uniquePrefix()

    /// One scrape: every sample line as `name{labels}` → value, after checking the text's grammar.
    static func scrape(_ client: some TestClientProtocol) async throws -> [String: Double] {
        let response = try await client.execute(uri: "/metrics", method: .get)
        #expect(response.status == .ok)
        #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
        let text = String(buffer: response.body)
        var samples: [String: Double] = [:]
        var typed: [String: String] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) where !line.isEmpty {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                #expect(parts.count == 4, "\(line)")
                #expect(["counter", "gauge", "histogram", "summary", "untyped"].contains(String(parts[3])), "\(line)")
                typed[String(parts[2])] = String(parts[3])
                continue
            }
            if line.hasPrefix("#") { continue }
            // `name{label="value",...} number`: a name of [a-zA-Z_:][a-zA-Z0-9_:]*, then labels, then a float.
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                Issue.record("not a sample line: \(line)")
                continue
            }
            let series = String(line[..<space])
            let name = series.prefix { $0 != "{" }
            #expect(
                name.first.map { $0.isLetter || $0 == "_" } == true
                    && name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" }, "\(line)")
            if series.contains("{") { #expect(series.hasSuffix("}"), "\(line)") }
            let family = ["_bucket", "_sum", "_count"].reduce(String(name)) { name, suffix in
                typed[name] == nil && name.hasSuffix(suffix) ? String(name.dropLast(suffix.count)) : name
            }
            #expect(typed[family] != nil, "a sample without a # TYPE line: \(line)")
            samples[series] = value
        }
        return samples
    }

    @Test func metricsAreValidPrometheusTextAndMoveWithTraffic() async throws {
        let (app, admin) = try await makeInstance(prefix: prefix)
        try await app.test(.router) { client in
            try await admin.test(.router) { adminClient in
                try await waitUntilReady(client, prefix: prefix)
                #expect(try await client.execute(uri: "/metrics", method: .get).status == .notFound, "not on the site")
                let before = try await Self.scrape(adminClient)
                var browser = Browser()
                try await browser.signIn(client)
                for _ in 0..<5 { _ = try await browser.get(client, "/") }
                let form = try await browser.get(client, "/settings")
                let token = try #require(Browser.csrf(in: form))
                _ = try await browser.post(client, "/settings", form: ["timezone": "Asia/Tokyo", "csrf": token])
                // The sign-in's and the change's events come back to this instance's settings cache (which ignores
                // them: it already holds what it wrote).
                func events(_ samples: [String: Double]) -> Double {
                    ["applied", "ignored"].reduce(0) {
                        $0 + (samples[#"rsess_settings_events_total{result="\#($1)"}"#] ?? 0)
                    }
                }
                #expect(await eventually { events((try? await Self.scrape(adminClient)) ?? [:]) >= events(before) + 2 })
                let after = try await Self.scrape(adminClient)
                func moved(_ series: String) -> Bool { (after[series] ?? 0) > (before[series] ?? 0) }
                #expect(
                    moved(#"rsess_session_loads_total{source="memory"}"#)
                        || moved(#"rsess_session_loads_total{source="redis"}"#))
                #expect(moved("rsess_session_saves_total"), "the settings change saved the session")
                #expect(moved("rsess_redis_batches_total"))
                #expect(after[#"rsess_cache_serving{cache="settings"}"#] == 1)
                #expect(after["rsess_settings_event_lag_seconds_count"].map { $0 >= 1 } == true, "the lag histogram")
                // Hummingbird's own request metrics, by route template and status. The process's other tests add to
                // them too, so the five signed-in page views are a lower bound.
                func pageViews(_ samples: [String: Double]) -> Double {
                    samples.filter { series, _ in
                        series.hasPrefix("hb_requests{") && series.contains(#"http_route="/""#)
                            && series.contains(#"http_response_status_code="200""#)
                    }.values.reduce(0, +)
                }
                #expect(pageViews(after) >= pageViews(before) + 5, "hb_requests moves with traffic")
                #expect(after.keys.contains { $0.hasPrefix("http_server_request_duration_bucket{") })
                // A page that does not exist is an error of route "NotFound", as Hummingbird labels it.
                func notFound(_ samples: [String: Double]) -> Double {
                    samples.filter { series, _ in
                        series.hasPrefix("hb_request_errors{") && series.contains(#"http_route="NotFound""#)
                            && series.contains(#"error_type="404""#)
                    }.values.reduce(0, +)
                }
                #expect(try await client.execute(uri: "/no-such-page", method: .get).status == .notFound)
                #expect(notFound(try await Self.scrape(adminClient)) >= notFound(after) + 1)
            }
        }
    }
}

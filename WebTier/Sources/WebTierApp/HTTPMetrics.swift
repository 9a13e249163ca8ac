import Hummingbird
import Metrics
import Prometheus

/// Hummingbird's request metrics, the ones a Hummingbird dashboard expects: its `MetricsMiddleware` counts requests
/// by route, method and status (`hb_requests`, `hb_request_errors`), times them (`http_server_request_duration`)
/// and gauges those in flight (`http_server_active_requests`).
///
/// That middleware records through the process's `MetricsSystem`, which can be bootstrapped once per process. So the
/// process gets one registry for it, bootstrapped on first use; `/metrics` emits it after the component's own
/// registry, which each instance passes to its kit explicitly.
enum HTTPMetrics {
    static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }()

    /// Hummingbird's `MetricsMiddleware`, once the registry is bootstrapped: a metric made before that would go
    /// nowhere.
    static func middleware<Context: RequestContext>() -> MetricsMiddleware<Context> {
        _ = registry
        return MetricsMiddleware()
    }
}

import Hummingbird
import Metrics
import Prometheus

/// Hummingbird's request metrics, the ones a Hummingbird dashboard expects: requests by route, method and status
/// (`hb_requests`, `hb_request_errors`), their durations (`http_server_request_duration`) and those in flight
/// (`http_server_active_requests`), recorded by ``RequestMetricsMiddleware`` under Hummingbird's names.
///
/// They go through the process's `MetricsSystem`, as Hummingbird's own `MetricsMiddleware` would send them, and that
/// can be bootstrapped once per process. So the process gets one registry for them, bootstrapped on first use;
/// `/metrics` emits it after the component's own registry, which each instance passes to its kit explicitly.
enum HTTPMetrics {
    static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }()

    /// The request metrics middleware, once the registry is bootstrapped: a metric made before that would go
    /// nowhere.
    static func middleware<Context: RequestContext>() -> RequestMetricsMiddleware<Context> {
        _ = registry
        return RequestMetricsMiddleware()
    }
}

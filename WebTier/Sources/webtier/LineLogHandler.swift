import Foundation
import Logging

/// Log lines on standard error, in `StreamLogHandler`'s format, built only when a message is logged.
///
/// swift-log's `StreamLogHandler` renders its whole metadata dictionary into a string every time metadata is set.
/// Hummingbird sets `hb.request.id` on every request's logger, so with the default handler the signed-in page spent
/// about 4 % of its CPU (perf, `WebTier/scripts/bench`) building strings that the `warning` level never prints. This
/// handler keeps the metadata as it is and renders it when a line is written.
struct LineLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(label: String) { self.label = label }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let explicit = event.metadata { merged.merge(explicit) { _, new in new } }
        let rendered = merged.sorted { $0.key < $1.key }.map { " \($0.key)=\($0.value)" }.joined()
        let line =
            "\(Date().formatted(.iso8601)) \(event.level) \(label) :\(rendered) [\(event.source)] \(event.message)\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
}

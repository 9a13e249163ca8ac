import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The static files the pages use: `/app.css`, and htmx when it was installed (`scripts/fetch-htmx`).
///
/// htmx is served by the instance itself, so instances work offline, at a path that carries a hash of its content
/// (`/static/htmx.<hash>.min.js`), so browsers may cache it for a year and a new version is a new URL. Without the file
/// the pages load no script and work as plain forms; the log says so once, at start.
struct Assets: Sendable {
    /// The URL path of htmx, or `nil` when it is not installed.
    let htmxPath: String?
    private let htmx: ByteBuffer?

    /// No assets: pages without htmx.
    static let none = Assets(htmxPath: nil, htmx: nil)

    private init(htmxPath: String?, htmx: ByteBuffer?) {
        self.htmxPath = htmxPath
        self.htmx = htmx
    }

    /// Reads `htmx.min.js` from `directory`, if there is one.
    static func load(directory: String?, logger: Logger) -> Assets {
        guard let directory else {
            logger.info("htmx is off: no public directory is configured (--public-dir, env PUBLIC_DIR)")
            return .none
        }
        let path = URL(fileURLWithPath: directory).appendingPathComponent("htmx.min.js").path
        guard let data = FileManager.default.contents(atPath: path), !data.isEmpty else {
            logger.info(
                "htmx is off: pages work as plain forms",
                metadata: ["rsess.missing": "\(path)", "rsess.fix": "scripts/fetch-htmx"])
            return .none
        }
        // FNV-1a of the content: a cache key, not a security check (scripts/fetch-htmx checked the SHA-256).
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in data {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        let digest = String(hash, radix: 16)
        return Assets(htmxPath: "/static/htmx.\(digest).min.js", htmx: ByteBuffer(bytes: data))
    }

    /// Serves the stylesheet at `/app.css`, and htmx at its hashed path with long-lived cache headers.
    func register(on router: Router<some RequestContext>) {
        router.get("/app.css") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "text/css; charset=utf-8", .cacheControl: "public, max-age=86400"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: stylesheet)))
        }
        guard let htmxPath, let htmx else { return }
        router.get(RouterPath(htmxPath)) { _, _ in
            Response(
                status: .ok,
                headers: [
                    .contentType: "text/javascript; charset=utf-8",
                    .cacheControl: "public, max-age=31536000, immutable",
                ],
                body: ResponseBody(byteBuffer: htmx))
        }
    }
}

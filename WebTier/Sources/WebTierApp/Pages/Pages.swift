import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import RedisSession
import SettingsSync

/// The server-rendered pages. Every form works without JavaScript; the settings form also carries htmx attributes,
/// and the server answers htmx requests (`HX-Request: true`) with `204` + `HX-Refresh: true`.
enum Pages {
    static func html(_ page: ByteBuffer, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: page))
    }

    /// A JSON object (keys sorted, so the output is stable for people and diffs).
    static func json(_ object: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        // Strings, numbers, booleans and NSNull only: serialising them cannot fail.
        let data =
            (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data("{}".utf8)
        return Response(
            status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func redirect(to location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }

    /// Redis is down or slow: not a logout, a temporary failure.
    static func unavailable() -> Response {
        var response = html(
            layout(
                title: "Temporarily unavailable", frame: .bare,
                body:
                    "<h1>Temporarily unavailable</h1><p>The session store did not answer. Please retry in a moment.</p>"
            ),
            status: .serviceUnavailable)
        response.headers[.retryAfter] = "1"
        return response
    }

    static func login(frame: PageFrame, csrf: String, error: String? = nil, username: String = "") -> ByteBuffer {
        let message = error.map { "<p class=\"error\" role=\"alert\">\(escape($0))</p>" } ?? ""
        return layout(
            title: "Sign in", frame: frame,
            body: """
                <header><h1>Sign in</h1></header>
                \(message)
                <form method="post" action="/login">
                <input type="hidden" name="csrf" value="\(escape(csrf))">
                <p><label>User name <input name="username" autocomplete="username" required value="\(escape(username))"></label></p>
                <p><label>Password <input name="password" type="password" autocomplete="current-password" required></label></p>
                <p><button type="submit">Sign in</button></p>
                </form>
                <p class="muted">Demo users: <code>alice</code> / <code>wonderland</code>, <code>bob</code> / <code>builder</code>.</p>
                """)
    }

    static func navigation(csrf: String) -> String {
        var writer = HTMLWriter(capacity: 320)
        navigation(csrf: csrf, into: &writer)
        return String(buffer: writer.buffer)
    }

    static func navigation(csrf: String, into page: inout HTMLWriter) {
        page.markup(
            """
            <nav><a href="/">Home</a><a href="/settings">Settings</a><a href="/sessions">Sessions</a>\
            <form class="inline" method="post" action="/logout"><input type="hidden" name="csrf" value="
            """)
        page.text(csrf)
        page.markup("\"><button type=\"submit\">Log out</button></form></nav>")
    }

    static func landing(frame: PageFrame, user: String, timezone: String, session: Session, csrf: String, now: Date)
        -> ByteBuffer
    {
        return layout(title: "Home", frame: frame) { page in
            page.markup("<header><h1>Hello, ")
            page.text(user)
            page.markup("</h1>")
            navigation(csrf: csrf, into: &page)
            page.markup("</header>\n<p>Times are shown in your timezone, <strong data-timezone=\"")
            page.text(timezone)
            page.markup("\">")
            page.text(timezone)
            page.markup("</strong>.</p>\n<table>")
            // The first row is the current time, marked for scripts and tests that read it.
            page.markup("<tr><th>Now</th><td><time data-now>")
            page.text(TimeRendering.render(now, in: timezone))
            page.markup("</time></td></tr><tr><th>Signed in</th><td>")
            page.text(TimeRendering.render(session.createdAt, in: timezone))
            page.markup("</td></tr><tr><th>Next New Year (UTC)</th><td>")
            page.text(TimeRendering.render(nextNewYear(after: now), in: timezone))
            page.markup("</td></tr></table>")
        }
    }

    static func settings(frame: PageFrame, current: String, csrf: String, error: String? = nil, now: Date = Date())
        -> ByteBuffer
    {
        let message = error.map { "<p class=\"error\" role=\"alert\">\(escape($0))</p>" } ?? ""
        var options = ""
        options.reserveCapacity(UserSettings.knownTimezones.count * 48)
        for (region, identifiers) in timezoneMenu {
            options += "<optgroup label=\"\(escape(region))\">"
            for identifier in identifiers {
                let selected = identifier == current ? " selected" : ""
                options += "<option value=\"\(escape(identifier))\"\(selected)>\(escape(identifier))</option>"
            }
            options += "</optgroup>"
        }
        return layout(
            title: "Settings", frame: frame,
            body: """
                <header><h1>Settings</h1>\(navigation(csrf: csrf))</header>
                \(message)
                <form method="post" action="/settings" hx-post="/settings" hx-target="body" hx-headers='{"X-CSRF-Token":"\(escape(csrf))"}'>
                <input type="hidden" name="csrf" value="\(escape(csrf))">
                <p><label>Timezone <select name="timezone">\(options)</select></label></p>
                <p><button type="submit">Save</button></p>
                </form>
                <p class="muted">Current: <span data-timezone="\(escape(current))">\(escape(current))</span>, where it is \
                <time data-now>\(escape(TimeRendering.render(now, in: current)))</time> now.</p>
                """)
    }

    static func sessions(
        frame: PageFrame, list: [SessionSummary], current: SessionHandle, timezone: String, csrf: String
    ) -> ByteBuffer {
        let rows = list.map { summary in
            // "Chrome 156 on Linux", with the header it was read from one click away.
            let agent = summary.labels["agent"].map(UserAgent.init)
            let device = agent?.description ?? "Unknown device"
            let marker = summary.handle == current ? " <strong>(this device)</strong>" : ""
            let detail = agent.map {
                "<details class=\"agent\"><summary>User agent</summary>\(escape($0.string))</details>"
            }
            return "<tr><td><span class=\"device\">\(escape(device))</span>\(marker)\(detail ?? "")</td>"
                + "<td data-label=\"Address\">\(escape(summary.labels["address"] ?? ""))</td>"
                + "<td data-label=\"Signed in\">\(escape(TimeRendering.render(summary.createdAt, in: timezone)))</td>"
                + "<td data-label=\"Last seen\">\(escape(TimeRendering.render(summary.lastSeenAt, in: timezone)))</td>"
                + "<td data-label=\"Expires if idle\">\(escape(TimeRendering.render(summary.expiresAt, in: timezone)))</td>"
                + "<td><form class=\"inline\" method=\"post\" action=\"/sessions/sign-out\">"
                + "<input type=\"hidden\" name=\"csrf\" value=\"\(escape(csrf))\">"
                + "<input type=\"hidden\" name=\"handle\" value=\"\(escape(summary.handle.text))\">"
                + "<button type=\"submit\" aria-label=\"Sign out \(escape(device))\">Sign out</button></form></td></tr>"
        }
        return layout(
            title: "Sessions", frame: frame,
            body: """
                <header><h1>Your sessions</h1>\(navigation(csrf: csrf))</header>
                <table class="devices"><tr><th>Device</th><th>Address</th><th>Signed in</th><th>Last seen</th><th>Expires if idle</th><th></th></tr>\(rows.joined())</table>
                <form method="post" action="/logout-everywhere">
                <input type="hidden" name="csrf" value="\(escape(csrf))">
                <p><button type="submit">Log out everywhere</button></p>
                </form>
                """)
    }

    static func forbidden(frame: PageFrame) -> Response {
        html(
            layout(
                title: "Forbidden", frame: frame,
                body:
                    "<h1>Forbidden</h1><p>The form was stale or did not come from this site. <a href=\"/\">Start again</a>.</p>"
            ),
            status: .forbidden)
    }

    /// The settings form's choices, grouped by region (`Europe`, `Asia`, ...; names without a region under `Other`).
    /// Foundation's list lags behind renames, so current names it lacks are added when the tz database has them.
    static let timezoneMenu: [(region: String, identifiers: [String])] = {
        let current = [
            "Asia/Kolkata", "Europe/Kyiv", "America/Nuuk", "Asia/Yangon", "Asia/Kathmandu", "Asia/Ho_Chi_Minh",
        ]
        let all = Set(UserSettings.knownTimezones + current.filter(UserSettings.isValidTimezone))
        let grouped = Dictionary(grouping: all) { identifier in
            identifier.contains("/") ? String(identifier.prefix { $0 != "/" }) : "Other"
        }
        return grouped.keys.sorted().map { (region: $0, identifiers: (grouped[$0] ?? []).sorted()) }
    }()

    private static func nextNewYear(after date: Date) -> Date {
        let year = TimeRendering.utcYear(of: date)
        return Date(timeIntervalSince1970: Double(TimeRendering.days(year: year + 1, month: 1, day: 1)) * 86_400)
    }
}

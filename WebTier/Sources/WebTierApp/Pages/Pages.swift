import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import RedisSession

/// The server-rendered pages. Every form works without JavaScript; the settings form also carries htmx attributes,
/// and the server answers htmx requests (`HX-Request: true`) with `204` + `HX-Refresh: true`.
enum Pages {
    static func html(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    static func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    static func redirect(to location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }

    /// Redis is down or slow: not a logout, a temporary failure.
    static func unavailable() -> Response {
        var response = html(
            layout(
                title: "Temporarily unavailable", instanceID: "",
                body:
                    "<h1>Temporarily unavailable</h1><p>The session store did not answer. Please retry in a moment.</p>"
            ),
            status: .serviceUnavailable)
        response.headers[.retryAfter] = "1"
        return response
    }

    static func login(instanceID: String, csrf: String, error: String? = nil, username: String = "") -> String {
        let message = error.map { "<p class=\"error\" role=\"alert\">\(escape($0))</p>" } ?? ""
        return layout(
            title: "Sign in", instanceID: instanceID,
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
        """
        <nav><a href="/">Home</a><a href="/settings">Settings</a><a href="/sessions">Sessions</a>\
        <form class="inline" method="post" action="/logout"><input type="hidden" name="csrf" value="\(escape(csrf))">\
        <button type="submit">Log out</button></form></nav>
        """
    }

    static func landing(instanceID: String, user: String, timezone: String, session: Session, csrf: String, now: Date)
        -> String
    {
        let samples: [(String, Date)] = [
            ("Now", now),
            ("Signed in", session.createdAt),
            ("Next New Year (UTC)", nextNewYear(after: now)),
        ]
        let rows = samples.map {
            "<tr><th>\(escape($0.0))</th><td>\(escape(TimeRendering.render($0.1, in: timezone)))</td></tr>"
        }
        return layout(
            title: "Home", instanceID: instanceID,
            body: """
                <header><h1>Hello, \(escape(user))</h1>\(navigation(csrf: csrf))</header>
                <p>Times are shown in your timezone, <strong data-timezone="\(escape(timezone))">\(escape(timezone))</strong>.</p>
                <table>\(rows.joined())</table>
                """)
    }

    static func settings(instanceID: String, current: String, csrf: String, error: String? = nil) -> String {
        let message = error.map { "<p class=\"error\" role=\"alert\">\(escape($0))</p>" } ?? ""
        var options = ""
        options.reserveCapacity(UserSettings.knownTimezones.count * 48)
        for identifier in UserSettings.knownTimezones {
            let selected = identifier == current ? " selected" : ""
            options += "<option\(selected)>\(escape(identifier))</option>"
        }
        return layout(
            title: "Settings", instanceID: instanceID,
            body: """
                <header><h1>Settings</h1>\(navigation(csrf: csrf))</header>
                \(message)
                <form method="post" action="/settings" hx-post="/settings" hx-headers='{"X-CSRF-Token":"\(escape(csrf))"}'>
                <input type="hidden" name="csrf" value="\(escape(csrf))">
                <p><label>Timezone <select name="timezone">\(options)</select></label></p>
                <p><button type="submit">Save</button></p>
                </form>
                <p class="muted">Current: <span data-timezone="\(escape(current))">\(escape(current))</span></p>
                """)
    }

    static func sessions(
        instanceID: String, list: [SessionSummary], current: SessionHandle, timezone: String, csrf: String
    ) -> String {
        let rows = list.map { summary in
            let device = summary.labels["agent"] ?? "Unknown device"
            let marker = summary.handle == current ? " <strong>(this device)</strong>" : ""
            return "<tr><td>\(escape(device))\(marker)</td><td>\(escape(summary.labels["address"] ?? ""))</td>"
                + "<td>\(escape(TimeRendering.render(summary.createdAt, in: timezone)))</td>"
                + "<td>\(escape(TimeRendering.render(summary.lastSeenAt, in: timezone)))</td>"
                + "<td>\(escape(TimeRendering.render(summary.expiresAt, in: timezone)))</td>"
                + "<td><form class=\"inline\" method=\"post\" action=\"/sessions/sign-out\">"
                + "<input type=\"hidden\" name=\"csrf\" value=\"\(escape(csrf))\">"
                + "<input type=\"hidden\" name=\"handle\" value=\"\(escape(summary.handle.text))\">"
                + "<button type=\"submit\" aria-label=\"Sign out \(escape(device))\">Sign out</button></form></td></tr>"
        }
        return layout(
            title: "Sessions", instanceID: instanceID,
            body: """
                <header><h1>Your sessions</h1>\(navigation(csrf: csrf))</header>
                <table><tr><th>Device</th><th>Address</th><th>Signed in</th><th>Last seen</th><th>Expires if idle</th><th></th></tr>\(rows.joined())</table>
                <form method="post" action="/logout-everywhere">
                <input type="hidden" name="csrf" value="\(escape(csrf))">
                <p><button type="submit">Log out everywhere</button></p>
                </form>
                """)
    }

    static func forbidden(instanceID: String) -> Response {
        html(
            layout(
                title: "Forbidden", instanceID: instanceID,
                body:
                    "<h1>Forbidden</h1><p>The form was stale or did not come from this site. <a href=\"/\">Start again</a>.</p>"
            ),
            status: .forbidden)
    }

    private static func nextNewYear(after date: Date) -> Date {
        let year = TimeRendering.utcYear(of: date)
        return Date(timeIntervalSince1970: Double(TimeRendering.days(year: year + 1, month: 1, day: 1)) * 86_400)
    }
}

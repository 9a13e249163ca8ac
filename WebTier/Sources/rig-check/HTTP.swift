import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A deliberately small HTTP/1.1 client for the checker: one request per connection (`Connection: close`), no
/// redirects followed, cookies handled by ``Browser``. Blocking, with socket timeouts; the checker is a sequential
/// program and runs it on its own threads.
struct HTTPResponse: Sendable {
    var status: Int
    var headers: [(name: String, value: String)]
    var body: String

    func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    func headers(_ name: String) -> [String] {
        headers.filter { $0.name.caseInsensitiveCompare(name) == .orderedSame }.map(\.value)
    }

    /// The `data-timezone` the landing page shows, or nil (the login page).
    var shownTimezone: String? {
        guard let range = body.range(of: "data-timezone=\"") else { return nil }
        let rest = body[range.upperBound...]
        return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
    }

    /// The first CSRF token embedded in the page's forms.
    var csrfToken: String? {
        guard let range = body.range(of: "name=\"csrf\" value=\"") else { return nil }
        let rest = body[range.upperBound...]
        return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
    }
}

struct HTTPFailure: Error, CustomStringConvertible {
    let description: String
    /// What failed at the socket, named as Python names the exception (ConnectionRefusedError, TimeoutError, ...):
    /// the load's "connection error X" answers keep the keys the Python checkers printed.
    var socketError: String? = nil
}

/// The Python exception class an errno becomes.
func pythonExceptionName(errno code: Int32) -> String {
    switch code {
    case ECONNREFUSED: "ConnectionRefusedError"
    case ECONNRESET: "ConnectionResetError"
    case EPIPE: "BrokenPipeError"
    case EAGAIN, EWOULDBLOCK, EINPROGRESS, ETIMEDOUT: "TimeoutError"
    default: "OSError"
    }
}

struct Endpoint: Sendable, CustomStringConvertible {
    let host: String
    let port: Int

    /// Parses `http://host:port[/...]`.
    init(url: String) throws {
        guard url.hasPrefix("http://") else { throw HTTPFailure(description: "only http:// URLs: \(url)") }
        let rest = url.dropFirst(7).split(separator: "/", maxSplits: 1).first ?? ""
        let parts = rest.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else {
            throw HTTPFailure(description: "need host:port in \(url)")
        }
        self.host = String(parts[0])
        self.port = port
    }

    var description: String { "http://\(host):\(port)" }

    func request(
        _ method: String, _ path: String, headers: [(String, String)] = [], body: String? = nil, timeout: Double = 5
    ) throws -> HTTPResponse {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var info: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &info) == 0, let first = info else {
            throw HTTPFailure(description: "cannot resolve \(host)", socketError: "gaierror")
        }
        defer { freeaddrinfo(info) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { throw HTTPFailure(description: "socket() failed") }
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let code = errno
            throw HTTPFailure(
                description: "connection refused by \(self)", socketError: pythonExceptionName(errno: code))
        }
        var text = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if let body { text += "Content-Length: \(body.utf8.count)\r\n" }
        text += "\r\n" + (body ?? "")
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else {
                let code = errno
                throw HTTPFailure(description: "send to \(self) failed", socketError: pythonExceptionName(errno: code))
            }
            sent += count
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count == 0 { break }
            guard count > 0 else {
                let code = errno
                throw HTTPFailure(
                    description: "no response from \(self) within \(timeout) s",
                    socketError: pythonExceptionName(errno: code))
            }
            received.append(contentsOf: buffer[..<count])
        }
        guard !received.isEmpty else {  // closed without a byte: http.client's RemoteDisconnected
            throw HTTPFailure(description: "incomplete response from \(self)", socketError: "RemoteDisconnected")
        }
        return try Self.parse(received, from: self)
    }

    static func parse(_ bytes: [UInt8], from endpoint: Endpoint) throws -> HTTPResponse {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = bytes.indices.first(where: { bytes[$0...].starts(with: separator) }) else {
            throw HTTPFailure(description: "incomplete response from \(endpoint)")
        }
        let head = String(decoding: bytes[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        guard let statusLine = head.first, statusLine.split(separator: " ").count >= 2,
            let status = Int(statusLine.split(separator: " ")[1])
        else { throw HTTPFailure(description: "bad status line from \(endpoint)") }
        var headers: [(String, String)] = []
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append(
                (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var body = Array(bytes[(end + 4)...])
        if headers.contains(where: { $0.0.lowercased() == "transfer-encoding" && $0.1.lowercased().contains("chunked") }
        ) {
            body = dechunk(body)
        }
        return HTTPResponse(
            status: status, headers: headers.map { (name: $0.0, value: $0.1) },
            body: String(decoding: body, as: UTF8.self))
    }

    private static func dechunk(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            guard let lineEnd = bytes[index...].firstIndex(of: 13) else { break }
            let sizeText = String(decoding: bytes[index..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size > 0 else { break }
            let start = lineEnd + 2
            guard start + size <= bytes.count else { break }
            out.append(contentsOf: bytes[start..<(start + size)])
            index = start + size + 2
        }
        return out
    }
}

/// A browser for the checker: a cookie jar, form posts, and which instance answered.
struct Browser {
    var cookies: [String: String] = [:]

    var cookieHeader: [(String, String)] {
        cookies.isEmpty ? [] : [("Cookie", cookies.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: "; "))]
    }

    private mutating func remember(_ response: HTTPResponse) {
        for value in response.headers("Set-Cookie") {
            guard let pair = value.split(separator: ";").first, let equals = pair.firstIndex(of: "=") else { continue }
            let name = String(pair[..<equals])
            let content = String(pair[pair.index(after: equals)...])
            if value.contains("Max-Age=0") || content.isEmpty { cookies[name] = nil } else { cookies[name] = content }
        }
    }

    mutating func get(
        _ endpoint: Endpoint, _ path: String, headers: [(String, String)] = [], timeout: Double = 5
    ) throws -> HTTPResponse {
        let response = try endpoint.request("GET", path, headers: cookieHeader + headers, timeout: timeout)
        remember(response)
        return response
    }

    mutating func post(
        _ endpoint: Endpoint, _ path: String, form: [String: String], headers: [(String, String)] = [],
        timeout: Double = 5
    ) throws -> HTTPResponse {
        let body = form.map {
            "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")"
        }
        .joined(separator: "&")
        let response = try endpoint.request(
            "POST", path, headers: cookieHeader + [("Content-Type", "application/x-www-form-urlencoded")] + headers,
            body: body, timeout: timeout)
        remember(response)
        return response
    }

    /// Signs in through the login form.
    mutating func signIn(_ endpoint: Endpoint, user: String, password: String) throws -> HTTPResponse {
        let form = try get(endpoint, "/")
        return try post(
            endpoint, "/login", form: ["username": user, "password": password, "csrf": form.csrfToken ?? ""])
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The proxies whose `X-Forwarded-For` an instance believes, and the rule that finds the client's address.
///
/// A request's `X-Forwarded-For` is whatever its sender wrote, so it counts only when the sender is a proxy this
/// deployment runs. When the peer is trusted, the client is the right-most hop that is not itself a trusted proxy:
/// every trusted proxy appended the address it saw, so hops to the right of the first untrusted one were written by
/// proxies, and hops to its left by the client (Rails' `trusted_proxies`, Express's `trust proxy`). With no trusted
/// proxies, the default, the header is ignored and the client is the peer.
///
/// Use the one address it gives for everything that keys on the client: login limits, device labels, logs.
///
/// ```swift
/// let proxies = try TrustedProxies("10.0.0.0/8, 127.0.0.1")
/// proxies.clientAddress(peer: "10.1.2.3", forwardedFor: ["203.0.113.9, 10.0.0.7"])   // "203.0.113.9"
/// proxies.clientAddress(peer: "198.51.100.4", forwardedFor: ["203.0.113.9"])          // "198.51.100.4"
/// ```
public struct TrustedProxies: Sendable, Hashable, CustomStringConvertible {
    /// One IPv4 or IPv6 network. IPv4 is held as IPv4-mapped IPv6 (`::ffff:0:0/96`), so that a peer reported as
    /// `::ffff:10.0.0.1` matches `10.0.0.0/8`.
    struct Network: Sendable, Hashable {
        var address: [UInt8]
        var prefixLength: Int

        func contains(_ other: [UInt8]) -> Bool {
            var remaining = prefixLength
            for index in 0..<16 where remaining > 0 {
                let bits = min(8, remaining)
                let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
                if address[index] & mask != other[index] & mask { return false }
                remaining -= bits
            }
            return true
        }
    }

    let networks: [Network]
    /// The networks as given, for logs and `--help`.
    private let spelled: [String]

    /// Trusts no proxy: `X-Forwarded-For` is ignored and the client is the peer.
    public static let none = TrustedProxies(networks: [], spelled: [])

    private init(networks: [Network], spelled: [String]) {
        self.networks = networks
        self.spelled = spelled
    }

    /// Parses a comma-separated list of addresses and CIDR networks: `10.0.0.0/8, 192.168.1.5, fd00::/8`.
    ///
    /// An empty list trusts no proxy.
    ///
    /// - Throws: ``ParseError`` naming the first entry that is not an address or network.
    public init(_ list: String) throws(ParseError) {
        var networks: [Network] = []
        var spelled: [String] = []
        for entry in list.split(separator: ",") {
            let text = entry.trimmingSpaces
            guard !text.isEmpty else { continue }
            let parts = text.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2, let parsed = Self.parse(String(parts[0])) else { throw ParseError(entry: text) }
            let maximum = parsed.isIPv4 ? 32 : 128
            var length = maximum
            if parts.count == 2 {
                guard let given = Int(parts[1]), (0...maximum).contains(given), parts[1].allSatisfy(\.isNumber) else {
                    throw ParseError(entry: text)
                }
                length = given
            }
            networks.append(Network(address: parsed.bytes, prefixLength: parsed.isIPv4 ? 96 + length : length))
            spelled.append(text)
        }
        self.init(networks: networks, spelled: spelled)
    }

    /// An entry of the list that is neither an IP address nor a CIDR network.
    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        /// The entry, as written.
        public var entry: String
        public var description: String {
            "'\(entry)' is not an IP address or a CIDR network (like 10.0.0.0/8 or fd00::/8)"
        }
    }

    /// Whether no proxy is trusted.
    public var isEmpty: Bool { networks.isEmpty }

    public var description: String { spelled.isEmpty ? "none" : spelled.joined(separator: ",") }

    /// Whether `address` (an IPv4 or IPv6 address, as a peer or a hop reports it) is a trusted proxy.
    public func contains(_ address: String) -> Bool {
        guard let parsed = Self.parse(address) else { return false }
        return networks.contains { $0.contains(parsed.bytes) }
    }

    /// The client's address: the peer, or, when the peer is a trusted proxy, the right-most `X-Forwarded-For` hop
    /// that is not one.
    ///
    /// Addresses come back in one canonical spelling (`::ffff:192.0.2.1` and `192.0.2.1` are the same client), so a
    /// client cannot get a fresh count by writing its address differently.
    ///
    /// - Parameters:
    ///   - peer: The connection's remote address, or `nil` when it has none (a Unix socket).
    ///   - forwardedFor: Every `X-Forwarded-For` header value of the request, in order.
    /// - Returns: `nil` only when `peer` is `nil`, or is not an IP address.
    public func clientAddress(peer: String?, forwardedFor: [String]) -> String? {
        guard let peer, let parsedPeer = Self.parse(peer) else { return nil }
        guard networks.contains(where: { $0.contains(parsedPeer.bytes) }) else { return parsedPeer.canonical }
        var nearest = parsedPeer
        for value in forwardedFor.reversed() {
            for hop in value.split(separator: ",").reversed() {
                // A hop that is not an address was not written by a proxy that appends what it saw: what is left
                // of it cannot be believed, so the client is the nearest proxy that reported it.
                guard let parsed = Self.parse(Self.withoutPort(hop.trimmingSpaces)) else { return nearest.canonical }
                guard networks.contains(where: { $0.contains(parsed.bytes) }) else { return parsed.canonical }
                nearest = parsed
            }
        }
        // Every hop is a trusted proxy: the left-most is as close to the client as anyone can tell.
        return nearest.canonical
    }

    /// `203.0.113.9:4711` or `[2001:db8::1]:443` (some proxies add the port) without the port.
    private static func withoutPort(_ hop: String) -> String {
        if hop.hasPrefix("["), let close = hop.firstIndex(of: "]") {
            return String(hop[hop.index(after: hop.startIndex)..<close])
        }
        if hop.filter({ $0 == ":" }).count == 1, let colon = hop.firstIndex(of: ":") {
            return String(hop[..<colon])
        }
        return hop
    }

    struct ParsedAddress {
        /// 16 bytes; IPv4 as IPv4-mapped IPv6.
        var bytes: [UInt8]
        var isIPv4: Bool
        /// Dotted decimal for IPv4 (mapped or not), RFC 5952 text for IPv6.
        var canonical: String
    }

    /// An IPv4 or IPv6 address (a zone such as `%eth0` is dropped), or `nil`.
    static func parse(_ text: String) -> ParsedAddress? {
        guard !text.isEmpty, text.utf8.count <= 64 else { return nil }
        let address = text.split(separator: "%", maxSplits: 1).first.map(String.init) ?? text
        var v4 = in_addr()
        if inet_pton(AF_INET, address, &v4) == 1 {
            let bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return ParsedAddress(
                bytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF] + bytes, isIPv4: true,
                canonical: bytes.map(String.init).joined(separator: "."))
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, address, &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return ParsedAddress(
                bytes: bytes, isIPv4: false, canonical: bytes[12...].map(String.init).joined(separator: "."))
        }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &v6, &text, socklen_t(text.count)) != nil else { return nil }
        let canonical = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return ParsedAddress(bytes: bytes, isIPv4: false, canonical: canonical)
    }
}

extension Substring {
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}

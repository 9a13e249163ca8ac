import Testing

@testable import RedisSession

/// The rule that finds a client's address behind proxies, without a server: every case an attack on the rig tried.
@Suite struct TrustedProxiesTests {
    @Test func parsesAddressesAndNetworks() throws {
        let proxies = try TrustedProxies(" 10.0.0.0/8, 192.168.1.5 ,fd00::/8,::1")
        #expect(proxies.contains("10.200.3.4"))
        #expect(proxies.contains("::ffff:10.0.0.1"), "an IPv4-mapped peer matches its IPv4 network")
        #expect(proxies.contains("192.168.1.5"))
        #expect(!proxies.contains("192.168.1.6"))
        #expect(proxies.contains("fd12:3456::1"))
        #expect(proxies.contains("::1"))
        #expect(!proxies.contains("fe80::1"))
        #expect(!proxies.contains("not an address"))
        #expect(proxies.description == "10.0.0.0/8,192.168.1.5,fd00::/8,::1")
        #expect(try TrustedProxies("").isEmpty)
        #expect(try TrustedProxies("0.0.0.0/0").contains("203.0.113.9"))
        for bad in ["10.0.0.0/33", "10.0.0.0/", "10.0.0/8", "fd00::/129", "localhost", "10.0.0.0/+8", "1.2.3.4/8/8"] {
            #expect(throws: TrustedProxies.ParseError.self, "\(bad)") { try TrustedProxies(bad) }
        }
    }

    /// No trusted proxy, the default: `X-Forwarded-For` is whatever the sender wrote, so it is ignored.
    @Test func withoutTrustedProxiesTheHeaderIsIgnored() {
        let none = TrustedProxies.none
        #expect(none.clientAddress(peer: "127.0.0.1", forwardedFor: ["203.0.113.9"]) == "127.0.0.1")
        #expect(none.clientAddress(peer: "10.0.0.7", forwardedFor: ["1.1.1.1, 2.2.2.2"]) == "10.0.0.7")
        #expect(none.clientAddress(peer: nil, forwardedFor: ["1.1.1.1"]) == nil)
    }

    /// Behind trusted proxies the client is the right-most hop that is not one: what the client wrote to the left
    /// of it never counts.
    @Test func theRightMostUntrustedHopIsTheClient() throws {
        let proxies = try TrustedProxies("10.0.0.0/8")
        #expect(proxies.clientAddress(peer: "10.0.0.2", forwardedFor: ["203.0.113.9"]) == "203.0.113.9")
        // A forged first hop (the victim's address) is left of the hop the proxy appended.
        #expect(
            proxies.clientAddress(peer: "10.0.0.2", forwardedFor: ["198.51.100.1, 203.0.113.9"]) == "203.0.113.9")
        // Two proxies: the inner one appended the outer one's address.
        #expect(
            proxies.clientAddress(peer: "10.0.0.2", forwardedFor: ["1.2.3.4, 203.0.113.9, 10.0.0.9"]) == "203.0.113.9")
        // Several header lines are one list, in order.
        #expect(proxies.clientAddress(peer: "10.0.0.2", forwardedFor: ["1.2.3.4", "203.0.113.9"]) == "203.0.113.9")
        // A peer that is not a trusted proxy is the client, whatever it wrote.
        #expect(proxies.clientAddress(peer: "198.51.100.7", forwardedFor: ["10.0.0.2"]) == "198.51.100.7")
        // A trusted peer that sent no header is the client.
        #expect(proxies.clientAddress(peer: "10.0.0.2", forwardedFor: []) == "10.0.0.2")
        // Every hop trusted: the left-most.
        #expect(proxies.clientAddress(peer: "10.0.0.2", forwardedFor: ["10.9.9.9, 10.0.0.3"]) == "10.9.9.9")
        // Garbage where a proxy's hop should be: the nearest proxy that reported it.
        #expect(proxies.clientAddress(peer: "10.0.0.2", forwardedFor: ["1.2.3.4, <script>"]) == "10.0.0.2")
        #expect(proxies.clientAddress(peer: "10.0.0.2", forwardedFor: ["1.2.3.4, ,10.0.0.3"]) == "10.0.0.3")
        // Ports that some proxies add.
        #expect(proxies.clientAddress(peer: "10.0.0.2", forwardedFor: ["203.0.113.9:4711"]) == "203.0.113.9")
        #expect(proxies.clientAddress(peer: "10.0.0.2", forwardedFor: ["[2001:db8::1]:443"]) == "2001:db8::1")
    }

    /// One client, one spelling: a client cannot reset its count by writing its address another way.
    @Test func addressesComeBackCanonical() throws {
        let proxies = try TrustedProxies("127.0.0.1")
        #expect(proxies.clientAddress(peer: "::ffff:127.0.0.1", forwardedFor: ["::ffff:203.0.113.9"]) == "203.0.113.9")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["2001:DB8:0::1"]) == "2001:db8::1")
        #expect(TrustedProxies.none.clientAddress(peer: "::ffff:198.51.100.2", forwardedFor: []) == "198.51.100.2")
    }
}

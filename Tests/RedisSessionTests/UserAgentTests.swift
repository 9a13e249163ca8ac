import Testing

@testable import RedisSession

/// Real `User-Agent` strings, as browsers and tools send them, and what a device list shows for each.
struct UserAgentTests {
    static let table: [(header: String, shown: String)] = [
        // What the browser test's headless Chromium sends.
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36",
            "Chrome 156 on Linux"
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "Chrome 131 on Windows"
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "Chrome 131 on macOS"
        ),
        (
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
            "Chrome 131 on Android"
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
            "Chrome 131 on iOS"
        ),
        (
            "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "Chrome 131 on ChromeOS"
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
            "Edge 131 on Windows"
        ),
        (
            "Mozilla/5.0 (Linux; Android 10; HD1913) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36 EdgA/131.0.2903.87",
            "Edge 131 on Android"
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0",
            "Opera 115 on Windows"
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/27.0 Chrome/125.0.0.0 Mobile Safari/537.36",
            "Samsung Internet 27 on Android"
        ),
        (
            "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "Firefox 133 on Linux"
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "Firefox 133 on Windows"
        ),
        (
            "Mozilla/5.0 (Android 15; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
            "Firefox 133 on Android"
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/133.0 Mobile/15E148 Safari/605.1.15",
            "Firefox 133 on iOS"
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1.1 Safari/605.1.15",
            "Safari 18 on macOS"
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
            "Safari 18 on iOS"
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 16_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
            "Safari 16 on iPadOS"
        ),
        (
            "Mozilla/5.0 (Linux; U; Android 4.0.3; en-us; GT-I9100 Build/IML74K) AppleWebKit/534.30 (KHTML, like Gecko) Version/4.0 Mobile Safari/534.30",
            "Android browser 4 on Android"
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 YaBrowser/24.12.0.0 Safari/537.36",
            "Yandex Browser 24 on Windows"
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Vivaldi/7.0.3495.18",
            "Vivaldi 7 on Linux"
        ),
        ("Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko", "Internet Explorer 11 on Windows"),
        ("Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1; Trident/4.0)", "Internet Explorer 8 on Windows"),
        ("curl/8.5.0", "curl 8"),
        ("Wget/1.21.4", "Wget 1"),
        ("python-requests/2.32.3", "Python requests 2"),
        // Unknown, empty, and hostile.
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Unknown browser"),
        ("", "Unknown browser"),
        ("a robot", "Unknown browser"),
        ("Mozilla/5.0 (X11; Linux x86_64) <script>alert(1)</script>/1", "Unknown browser on Linux"),
        ("Chrome/<b>9</b>", "Chrome"),
        ("Chrome/12345678", "Chrome"),
    ]

    @Test(arguments: table)
    func reads(header: String, shown: String) {
        let agent = UserAgent(header)
        #expect(agent.description == shown)
        #expect(agent.string == header, "the full string stays available")
    }

    @Test func readsOnlyTheHeadOfAHugeHeader() {
        let huge = "Firefox/1 " + String(repeating: "(", count: 1_000_000) + "Linux"
        let agent = UserAgent(huge)
        #expect(agent.description == "Firefox 1")
        #expect(agent.string.utf8.count == huge.utf8.count)
    }

    @Test func theShownTextIsOnlyItsOwnWords() {
        // Whatever the header holds, the description is built from the rules' names and digits.
        let names = Set(UserAgent.browsers.map(\.name) + UserAgent.systems.map(\.name) + ["Unknown browser"])
        for (header, _) in Self.table {
            let agent = UserAgent(header)
            #expect(agent.browser.map(names.contains) ?? true)
            #expect(agent.system.map(names.contains) ?? true)
            #expect(agent.version?.allSatisfy { $0.isASCII && $0.isNumber } ?? true)
        }
    }
}

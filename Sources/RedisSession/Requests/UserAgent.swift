/// A `User-Agent` header, read for people: "Chrome 156 on Linux" instead of
/// "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36".
///
/// A device list shows ``description``, and keeps ``string`` for whoever wants the detail. The reading names the
/// browser family and its major version and the operating system, and nothing finer: the header is whatever the client
/// wrote, so it is a hint for the person who owns the sessions, never something to decide on.
///
/// ```swift
/// UserAgent("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) … Version/18.1 Mobile/15E148 Safari/604.1")
///     .description                                             // "Safari 18 on iOS"
/// UserAgent("a robot").description                             // "Unknown browser"
/// ```
///
/// Every name it returns is one of its own words, and every version is digits: nothing of the header's text reaches
/// ``description`` except those digits.
public struct UserAgent: Sendable, Hashable, CustomStringConvertible {
    /// The header as sent.
    public let string: String
    /// The browser (or HTTP tool) family, `"Chrome"`, `"Firefox"`, `"curl"`; `nil` when it is not one it knows.
    public let browser: String?
    /// The browser's major version, `"156"`; `nil` when the header does not give one.
    public let version: String?
    /// The operating system, `"Linux"`, `"macOS"`, `"iOS"`; `nil` when the header does not say.
    public let system: String?

    /// Reads a `User-Agent` header. Any text is accepted; what it does not recognise stays `nil`.
    public init(_ string: String) {
        self.string = string
        // Bounded: a header is read only as far as its first 1,024 bytes.
        let text = String(decoding: string.utf8.prefix(1024), as: UTF8.self)
        let tokens = Self.productTokens(text)
        let comment = Self.comment(text)
        let browser = Self.browsers.lazy.compactMap { rule in
            rule.match(tokens, comment: comment).map { (rule.name, $0) }
        }.first
        self.browser = browser?.0
        self.version = browser?.1
        self.system = Self.systems.first { rule in rule.markers.contains { comment.contains($0) } }?.name
    }

    /// `"Chrome 156 on Linux"`, `"Firefox on Android"`, `"Unknown browser on Windows"` or `"Unknown browser"`.
    public var description: String {
        var text = browser ?? "Unknown browser"
        if browser != nil, let version { text += " \(version)" }
        if let system { text += " on \(system)" }
        return text
    }

    // MARK: - The rules

    /// A browser family and the product token that gives it away. The first rule that matches wins, so a browser
    /// built on another comes before it: Edge and Opera send `Chrome/` too, and Chrome sends `Safari/`.
    struct BrowserRule {
        var name: String
        /// The token names that mean this browser.
        var tokens: [String]
        /// The token that carries the version when it is not the browser's own: Safari's is `Version/` (its
        /// `Safari/` is the WebKit build), Internet Explorer 11's is `rv:`.
        var versionToken: String?
        /// Old Android browsers send `Safari/` too; they are not Safari.
        var notOnAndroid = false

        func match(_ tokens: [(name: String, version: Substring)], comment: String) -> String?? {
            guard !(notOnAndroid && comment.contains("Android")),
                let found = tokens.first(where: { self.tokens.contains($0.name) })
            else { return nil }
            let version: Substring?
            if let versionToken {
                version = tokens.first { $0.name == versionToken }?.version
            } else {
                version = found.version
            }
            return .some(version.flatMap(UserAgent.majorVersion))
        }
    }

    static let browsers: [BrowserRule] = [
        BrowserRule(name: "Edge", tokens: ["Edg", "EdgA", "EdgiOS", "Edge"]),
        BrowserRule(name: "Opera", tokens: ["OPR", "OPiOS", "Opera"]),
        BrowserRule(name: "Samsung Internet", tokens: ["SamsungBrowser"]),
        BrowserRule(name: "Yandex Browser", tokens: ["YaBrowser"]),
        BrowserRule(name: "Vivaldi", tokens: ["Vivaldi"]),
        BrowserRule(name: "Firefox", tokens: ["Firefox", "FxiOS"]),
        // Headless Chrome is Chrome: what the device list should say of a test browser too.
        BrowserRule(name: "Chrome", tokens: ["Chrome", "CriOS", "HeadlessChrome"]),
        BrowserRule(name: "Chromium", tokens: ["Chromium"]),
        BrowserRule(name: "Safari", tokens: ["Safari"], versionToken: "Version", notOnAndroid: true),
        BrowserRule(name: "Android browser", tokens: ["Safari"], versionToken: "Version"),
        BrowserRule(name: "Internet Explorer", tokens: ["MSIE"]),
        BrowserRule(name: "Internet Explorer", tokens: ["Trident"], versionToken: "rv"),
        BrowserRule(name: "curl", tokens: ["curl"]),
        BrowserRule(name: "Wget", tokens: ["Wget"]),
        BrowserRule(name: "HTTPie", tokens: ["HTTPie"]),
        BrowserRule(name: "Python requests", tokens: ["python-requests"]),
    ]

    /// An operating system and the words in the header's comment that name it. iOS and iPadOS come before macOS
    /// because they say "like Mac OS X"; Android and ChromeOS before Linux because they say "Linux".
    static let systems: [(name: String, markers: [String])] = [
        ("iOS", ["iPhone", "iPod"]),
        ("iPadOS", ["iPad"]),
        ("Android", ["Android"]),
        ("ChromeOS", ["CrOS"]),
        ("Windows", ["Windows"]),
        ("macOS", ["Macintosh", "Mac OS X"]),
        ("FreeBSD", ["FreeBSD"]),
        ("OpenBSD", ["OpenBSD"]),
        ("Linux", ["Linux", "Ubuntu", "Fedora"]),
    ]

    // MARK: - Reading the header

    /// The header's product tokens, `name/version`, wherever they are; and `MSIE 8.0` and `rv:11.0`, Internet
    /// Explorer's ways.
    static func productTokens(_ text: String) -> [(name: String, version: Substring)] {
        let words = text.split { $0 == " " || $0 == "(" || $0 == ")" || $0 == ";" || $0 == "," }
        var tokens: [(name: String, version: Substring)] = []
        for (index, word) in words.enumerated() {
            if let slash = word.firstIndex(of: "/") {
                tokens.append((String(word[..<slash]), word[word.index(after: slash)...]))
            } else if word == "MSIE", index + 1 < words.count {
                tokens.append(("MSIE", words[index + 1]))
            } else if word.hasPrefix("rv:") {
                tokens.append(("rv", word.dropFirst(3)))
            }
        }
        return tokens
    }

    /// What the first parentheses hold: where clients name their system.
    static func comment(_ text: String) -> String {
        guard let open = text.firstIndex(of: "(") else { return "" }
        let rest = text[text.index(after: open)...]
        return String(rest[..<(rest.firstIndex(of: ")") ?? rest.endIndex)])
    }

    /// `"156.0.0.0"` → `"156"`; nothing that is not a number of at most five digits.
    static func majorVersion(_ version: Substring) -> String? {
        let digits = version.trimmingPrefix(" ").prefix { $0.isASCII && $0.isNumber }
        return digits.isEmpty || digits.count > 5 ? nil : String(digits)
    }
}

@_spi(Fuzzing) import RedisClient
import RedisSession
import SettingsSync

#if canImport(Glibc)
    import Glibc
#endif

/// What the fuzzer feeds: each target takes arbitrary bytes and checks what must hold for any input. A broken
/// invariant is a `precondition` failure, which the fuzzer reports as a crash with the input that caused it.
enum FuzzTarget: String, CaseIterable {
    /// The `Cookie` header parser, session IDs and handles.
    case cookie
    /// `redis://` and `rediss://` URLs.
    case url
    /// Events on the channel.
    case event
    /// URL-encoded form bodies.
    case form
    /// hiredis' reader on raw RESP bytes, and the conversion of what it parsed.
    case reply
    /// A stored session value under encryption: the sealed-value decoder on anything Redis might hold.
    case sealed

    /// Two fixed keys: the fuzzer's inputs may name either, or neither.
    static let encryption: SessionEncryption? = try? SessionEncryption(
        keys: [
            try SessionEncryption.Key(id: "k", bytes: Array(repeating: 1, count: 32)),
            try SessionEncryption.Key(id: "old", bytes: Array(repeating: 2, count: 32)),
        ])

    /// Whether `bytes` hold a `*` followed by a count of seven digits or more.
    static func announcesHugeArray(_ bytes: [UInt8]) -> Bool {
        var digits = -1
        for byte in bytes {
            if byte == UInt8(ascii: "*") {
                digits = 0
            } else if digits >= 0, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) {
                digits += 1
                if digits >= 7 { return true }
            } else {
                digits = -1
            }
        }
        return false
    }

    func run(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        switch self {
        case .cookie:
            if let id = SessionCookie().sessionID(fromCookieHeader: text) {
                precondition(SessionID(id.text) == id, "a parsed session ID parses again to itself")
                precondition(id.storageName.hasPrefix("{" + id.tag + "}"), "the storage name starts with the tag")
                precondition(!id.storageName.contains(id.text), "the storage name does not hold the ID")
            }
            if let handle = SessionHandle(text) { precondition(handle.text == text, "a handle is its own text") }
        case .url:
            if let configuration = try? RedisConfiguration(url: text) {
                if case .tcp(let host, let port) = configuration.endpoint {
                    precondition((1...65535).contains(port) && !host.isEmpty, "a parsed URL has a host and a port")
                }
                precondition(configuration.database >= 0, "a parsed URL has a database number")
            }
        case .event:
            if case .success(let event) = SessionEvent.decode(bytes) {
                precondition((0...SessionEvent.maximumVersion).contains(event.version), "versions are in range")
                guard case .success(let again) = SessionEvent.decode(event.encoded()) else {
                    preconditionFailure("an event decodes from its own encoding")
                }
                precondition(again == event, "an event survives encoding and decoding")
            }
        case .form:
            for (name, _) in FormDecoding.fields(of: text) {
                precondition(name.utf8.count <= text.utf8.count, "a name is no longer than the body")
            }
        case .reply:
            // hiredis 0.14 allocates an array's whole element table when it reads the header (1.x bounds it with
            // `maxelements`), so `*311111111` asks for 2.5 GB: a known limit of the library version, recorded in
            // docs/ARCHITECTURE.md, that the fuzzer found first. Inputs announcing more than a million elements are
            // left out so that it can look for anything else.
            guard !Self.announcesHugeArray(bytes) else { return }
            _ = ReplyReader.replies(in: bytes)
        case .sealed:
            guard let encryption = Self.encryption else { preconditionFailure("the fuzzer's keys are valid") }
            let name = "{abc}fuzz"
            if let opened = try? encryption.open(bytes, field: "a:x", storageName: name) {
                // Only a value sealed for this field and session opens; sealing it again must round-trip.
                guard let again = try? encryption.seal(opened, field: "a:x", storageName: name),
                    let reopened = try? encryption.open(again, field: "a:x", storageName: name)
                else { preconditionFailure("an opened value seals and opens again") }
                precondition(reopened == opened, "a value survives sealing and opening")
                precondition((try? encryption.open(again, field: "a:y", storageName: name)) == nil, "bound to its field")
            }
        }
    }
}

#if FUZZING
    /// The target the fuzzer runs, from `FUZZ_TARGET` (read once).
    let selectedTarget: FuzzTarget = {
        guard let name = getenv("FUZZ_TARGET").map({ String(cString: $0) }), let target = FuzzTarget(rawValue: name)
        else {
            print(
                "session-fuzz: set FUZZ_TARGET to one of \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))"
            )
            exit(64)
        }
        return target
    }()

    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
        let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
        selectedTarget.run(bytes)
        return 0
    }

    /// libFuzzer's driver, called from this executable's own entry point (SwiftPM names an executable's `main`, so
    /// libFuzzer's own `main` is not used).
    @_silgen_name("LLVMFuzzerRunDriver")
    func runFuzzerDriver(
        _ argc: UnsafeMutablePointer<CInt>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt

    @main
    struct FuzzMain {
        static func main() {
            _ = selectedTarget
            var argc = CommandLine.argc
            var argv = CommandLine.unsafeArgv
            exit(runFuzzerDriver(&argc, &argv, fuzzOneInput))
        }
    }
#endif

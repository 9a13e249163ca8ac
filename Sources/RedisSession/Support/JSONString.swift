/// JSON string literals without `JSONEncoder`'s cost, for the hot paths: a session's string attributes and the
/// events' wire format. The package's one JSON string escaper.
package enum JSONString {
    /// `value` as a JSON string literal, quotes included; the same bytes `JSONEncoder` writes for a string (it
    /// does not escape `/` either).
    package static func encode(_ value: String) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "\"")]
        out.reserveCapacity(value.utf8.count + 2)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += [92, 34]
            case "\\": out += [92, 92]
            case "\n": out += [92, 110]
            case "\r": out += [92, 114]
            case "\t": out += [92, 116]
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += Array("\\u".utf8) + Array(String(repeating: "0", count: 4 - hex.count).utf8) + Array(hex.utf8)
            default: out += Array(String(scalar).utf8)
            }
        }
        out.append(UInt8(ascii: "\""))
        return out
    }

    /// The common case without `JSONDecoder`: a JSON string literal with no escapes. `nil` sends the caller to the
    /// decoder.
    package static func decode(_ bytes: [UInt8]) -> String? {
        guard bytes.count >= 2, bytes.first == UInt8(ascii: "\""), bytes.last == UInt8(ascii: "\""),
            !bytes.contains(UInt8(ascii: "\\"))
        else { return nil }
        let inner = bytes[1..<(bytes.count - 1)]
        guard !inner.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") }) else { return nil }
        return String(validating: inner, as: UTF8.self)
    }
}

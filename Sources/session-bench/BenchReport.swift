import Foundation

/// Figures of one benchmark run, printed as aligned lines and optionally as one JSON object (the last line).
struct BenchReport {
    struct Line {
        let label: String
        let value: String
    }

    private(set) var lines: [Line] = []
    private(set) var figures: [(String, Double)] = []
    /// Put before every key from here on (`tls.` for a run over TLS).
    var keyPrefix = ""

    /// Puts `prefix` before every key recorded so far (`valkey.` for a run on Valkey).
    mutating func prefixKeys(with prefix: String) {
        figures = figures.map { (prefix + $0.0, $0.1) }
    }

    mutating func section(_ title: String) { lines.append(Line(label: "", value: title)) }

    mutating func rate(_ key: String, _ label: String, _ opsPerSecond: Double) {
        figures.append((keyPrefix + key, opsPerSecond.rounded()))
        lines.append(Line(label: label, value: "\(Int(opsPerSecond.rounded())) ops/s"))
    }

    mutating func ratio(_ key: String, _ label: String, _ value: Double, target: String? = nil) {
        figures.append((keyPrefix + key, (value * 100).rounded() / 100))
        let suffix = target.map { "  (target \($0))" } ?? ""
        lines.append(Line(label: label, value: String(format: "%.2fx", value) + suffix))
    }

    mutating func figure(_ key: String, _ label: String, _ value: Double, unit: String, digits: Int = 2) {
        let scale = pow(10, Double(digits))
        figures.append((keyPrefix + key, (value * scale).rounded() / scale))
        lines.append(Line(label: label, value: String(format: "%.\(digits)f \(unit)", value)))
    }

    /// A figure recorded under `key`, for a benchmark that reports another's figures under its own names.
    func value(_ key: String) -> Double? { figures.first { $0.0 == keyPrefix + key }?.1 }

    func print(json: Bool) {
        let width = lines.map(\.label.count).max() ?? 0
        for line in lines {
            if line.label.isEmpty {
                Swift.print("\n== \(line.value)")
            } else {
                Swift.print(line.label.padding(toLength: width + 2, withPad: " ", startingAt: 0) + line.value)
            }
        }
        if json {
            let body = figures.map { key, value in
                let text = value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
                return "\"\(key)\":\(text)"
            }
            Swift.print("{" + body.joined(separator: ",") + "}")
        }
    }
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    return sorted.count % 2 == 1
        ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

import Foundation
import RedisClient
import RedisTesting

/// Runs Redis' own `redis-benchmark`, the reference every client figure is divided by.
struct RedisBenchmarkTool {
    let host: String
    let port: Int
    /// `--cluster`: spread the keys over a Redis Cluster's primaries, as a cluster client does.
    var cluster = false
    /// TLS as the client under measurement has it (`--tls` with the same CA, certificate and name).
    var tls: RedisConfiguration.TLS? = nil

    /// redis-benchmark's options for `tls`.
    private var tlsArguments: [String] {
        guard let tls else { return [] }
        var arguments = ["--tls"]
        if let caFile = tls.caFile { arguments += ["--cacert", caFile] }
        if let certificate = tls.certificateFile, let key = tls.keyFile { arguments += ["--cert", certificate, "--key", key] }
        if let name = tls.serverName { arguments += ["--sni", name] }
        if tls.verification == .insecureNoVerification { arguments.append("--insecure") }
        return arguments
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Requests per second of `redis-benchmark -t <test> -c <clients> [-P <pipeline>]`.
    func requestsPerSecond(test: String, clients: Int, requests: Int, pipeline: Int = 1) throws -> Double {
        guard let executable = RedisServer.findExecutable("redis-benchmark") else {
            throw Failure(description: "redis-benchmark is not installed (apt-get install redis-tools)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments =
            [
                "-h", host, "-p", String(port), "-t", test, "-c", String(clients), "-n", String(requests),
                "-P", String(pipeline), "--csv",
            ] + (cluster ? ["--cluster"] : []) + tlsArguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        // CSV: "test","rps",...; the data line starts with the quoted test name.
        for line in text.split(separator: "\n") where line.hasPrefix("\"\(test.uppercased())") {
            let fields = line.split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
            if fields.count > 1, let rate = Double(fields[1]) { return rate }
        }
        throw Failure(description: "cannot read redis-benchmark's output: \(text.prefix(200))")
    }
}

import Foundation
public import RedisClient

/// A throw-away certificate authority and a server certificate signed by it, made at test time with `openssl`
/// (through `scripts/make-tls-certs`, the same script the rig uses).
public struct TLSCertificates: Sendable {
    /// The folder holding the files.
    public let directory: String
    /// The CA certificate that signed every certificate here; a client trusts it with `ca=`.
    public var caPath: String { directory + "/ca.crt" }
    /// The server certificate, naming the hosts it was made for.
    public var serverCertificatePath: String { directory + "/server.crt" }
    /// The server's private key.
    public var serverKeyPath: String { directory + "/server.key" }
    /// A client certificate signed by the CA, for mutual TLS (`tls-auth-clients yes`).
    public var clientCertificatePath: String { directory + "/client.crt" }
    /// The client certificate's private key.
    public var clientKeyPath: String { directory + "/client.key" }
    /// A server certificate for the same hosts whose validity has ended.
    public var expiredCertificatePath: String { directory + "/expired.crt" }
    /// The expired certificate's private key.
    public var expiredKeyPath: String { directory + "/expired.key" }

    /// TLS for a client of a server with these certificates: the CA trusted, everything verified.
    public var clientTLS: RedisConfiguration.TLS { RedisConfiguration.TLS(caFile: caPath) }

    /// The URL query that trusts this CA: `ca=<path>`.
    public var urlQuery: String { "ca=" + caPath }

    /// Makes a new CA and a server certificate for `hosts` in a temporary folder. Two calls make unrelated CAs.
    ///
    /// - Parameter hosts: The names and addresses the server certificate carries.
    /// - Throws: ``RedisServerError`` when `openssl` is missing or fails.
    public static func make(hosts: [String] = ["localhost", "127.0.0.1"]) throws -> TLSCertificates {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("tls-\(UUID().uuidString.prefix(8))", isDirectory: true).path
        let script = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/make-tls-certs").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: script)
        process.arguments = [directory] + hosts
        process.standardOutput = FileHandle.nullDevice
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw RedisServerError("make-tls-certs failed: \(message)")
        }
        return TLSCertificates(directory: directory)
    }
}

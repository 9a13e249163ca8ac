import Foundation
import RedisClient
import RedisTesting

/// `session-bench`: side-by-side performance figures, measured in one sitting against one private redis-server.
@main
struct SessionBench {
    static let usage = """
        USAGE: session-bench <benchmark> [--json] [--rounds N] [--tls] [--server redis|valkey] [--redis-url URL]
                             [--pool-size N] [--busy-poll-us N] [--encryption]
               session-bench scale [--json] [--topology standalone|cluster] [--instances 2,8,32,64] [--requests N]
                                   [--rate N]
               session-bench keys --redis-url URL [--prefix P] [--json]

        Benchmarks:
          client     GET from 1 and 64 concurrent tasks vs redis-benchmark -c 1 / -c 64 (and -P 16)
          sessions   session load and save from 64 concurrent tasks vs redis-benchmark -c 64 -t get
          events     settings-event propagation to 3 instances (p50/p99) and the cached timezone lookup cost
          cluster    on a 3-primary Redis Cluster of its own: session load vs redis-benchmark --cluster -c 64,
                     event propagation and a destroy reaching another instance's cache (p99)
          scale      2 to 64 simulated web instances (each its own pool, session cache and tracker) over 20,000
                     sessions, on one Redis and on a 3-primary cluster: reports per write, hit ratio, Redis CPU per
                     1,000 requests, instance CPU per request, for each tracking mode and each routing
          keys       not a benchmark: how many stored session values each encryption key holds, on the server
                     (every primary of a cluster) --redis-url names, under --prefix (default rsess:); an old key can
                     go once it holds none

        Options:
          --json           print one JSON object of every figure as the last line
          --rounds N       measure each figure N times and keep the median (default 3)
          --tls            the private redis-server accepts TLS only (certificates made for the run); the client and
                           redis-benchmark --tls both pay for TLS, and every figure is keyed tls.* (client, sessions)
          --server NAME    the private server(s): redis (default, or $REDIS_SERVER) or valkey (Valkey 8, from
                           scripts/fetch-valkey); redis-benchmark measures the same server, and on Valkey every
                           figure is keyed valkey.* (not with --tls: that Valkey binary has no TLS)
          --redis-url URL  measure against this server instead of a private one (redis-benchmark must reach it;
                           a rediss:// URL's ca=, cert=, key= and sni= are given to redis-benchmark --tls too)
          --pool-size N    connections in each client's pool (default 2, the library's default)
          --busy-poll-us N each client's busyPollWindow in microseconds (default 50, the library's; 0 turns it off)
          --topology T     scale: standalone or cluster only (default both)
          --instances L    scale: instance counts, comma-separated (default 2,8,32,64)
          --requests N     scale: requests measured per configuration (default 30000)
          --rate N         scale: requests per second offered while the costs are measured (default 10000)
          --encryption     sessions: also measure load and save with every value encrypted (AES-256-GCM), and the
                           cost of encrypting and decrypting one 64-byte value
          -h, --help       show this help

        Every figure is a rate (operations per second) or a ratio of two rates measured in the same run;
        compare ratios, not raw rates, across machines.
        """

    static func main() async {
        var arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.isEmpty || arguments.contains("-h") || arguments.contains("--help") {
            print(usage)
            exit(arguments.isEmpty ? 64 : 0)
        }
        let benchmark = arguments.removeFirst()
        var options = BenchOptions()
        do {
            try options.parse(arguments)
        } catch {
            FileHandle.standardError.write(Data("session-bench: \(error)\n\n\(usage)\n".utf8))
            exit(64)
        }
        if options.tls && options.server == .valkey {
            FileHandle.standardError.write(Data("session-bench: --tls and --server valkey do not go together: that Valkey binary has no TLS\n".utf8))
            exit(64)
        }
        if options.tls && !["client", "sessions"].contains(benchmark) {
            FileHandle.standardError.write(Data("session-bench: --tls applies to client and sessions, not \(benchmark)\n".utf8))
            exit(64)
        }
        if benchmark == "keys" {
            exit(await KeyCensusCommand.run(options: options))
        }
        do {
            let report: BenchReport
            switch benchmark {
            case "client": report = try await ClientBenchmark(options: options).run()
            case "sessions": report = try await SessionsBenchmark(options: options).run()
            case "events": report = try await EventsBenchmark(options: options).run()
            case "cluster": report = try await ClusterBenchmark(options: options).run()
            case "scale": report = try await ScaleBenchmark(options: options).run()
            default:
                FileHandle.standardError.write(
                    Data("session-bench: unknown benchmark '\(benchmark)'\n\n\(usage)\n".utf8))
                exit(64)
            }
            var printed = report
            if options.server == .valkey && options.redisURL == nil { printed.prefixKeys(with: "valkey.") }
            printed.print(json: options.json)
        } catch {
            FileHandle.standardError.write(Data("session-bench: \(error)\n".utf8))
            exit(1)
        }
    }
}

struct BenchOptions {
    var json = false
    var rounds = 3
    var redisURL: String?
    var poolSize: Int?
    var busyPollMicroseconds: Int?
    var tls = false
    var server: ServerKind = .selected
    var encryption = false
    var prefix = "rsess:"
    /// `scale`: where, how many instances, and how many requests per configuration.
    var scaleTopologies: [ScaleBenchmark.Topology] = [.standalone, .cluster]
    var instanceCounts: [Int]?
    var requests: Int?
    var scaleRate = 10_000

    struct Problem: Error, CustomStringConvertible {
        let description: String
    }

    mutating func parse(_ arguments: [String]) throws {
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--json": json = true
            case "--tls": tls = true
            case "--encryption": encryption = true
            case "--prefix":
                guard let value = iterator.next(), !value.isEmpty else { throw Problem(description: "--prefix needs a prefix") }
                prefix = value
            case "--server":
                guard let value = iterator.next(), let kind = ServerKind(rawValue: value) else {
                    throw Problem(description: "--server needs redis or valkey")
                }
                server = kind
            case "--rounds":
                guard let value = iterator.next().flatMap(Int.init), value >= 1 else {
                    throw Problem(description: "--rounds needs a positive integer")
                }
                rounds = value
            case "--redis-url":
                guard let value = iterator.next() else { throw Problem(description: "--redis-url needs a URL") }
                _ = try RedisConfiguration(url: value)
                redisURL = value
            case "--pool-size":
                guard let value = iterator.next().flatMap(Int.init), (1...64).contains(value) else {
                    throw Problem(description: "--pool-size needs an integer from 1 to 64")
                }
                poolSize = value
            case "--topology":
                guard let value = iterator.next(), let topology = ScaleBenchmark.Topology(rawValue: value) else {
                    throw Problem(description: "--topology needs standalone or cluster")
                }
                scaleTopologies = [topology]
            case "--instances":
                guard let value = iterator.next() else { throw Problem(description: "--instances needs a list") }
                let counts = value.split(separator: ",").compactMap { Int($0) }
                guard !counts.isEmpty, counts.count == value.split(separator: ",").count,
                    counts.allSatisfy({ (1...128).contains($0) })
                else {
                    throw Problem(description: "--instances needs instance counts from 1 to 128, comma-separated")
                }
                instanceCounts = counts
            case "--requests":
                guard let value = iterator.next().flatMap(Int.init), (1_000...10_000_000).contains(value) else {
                    throw Problem(description: "--requests needs an integer from 1000 to 10000000")
                }
                requests = value
            case "--rate":
                guard let value = iterator.next().flatMap(Int.init), (100...1_000_000).contains(value) else {
                    throw Problem(description: "--rate needs requests per second from 100 to 1000000")
                }
                scaleRate = value
            case "--busy-poll-us":
                guard let value = iterator.next().flatMap(Int.init), (0...1000).contains(value) else {
                    throw Problem(description: "--busy-poll-us needs an integer from 0 to 1000")
                }
                busyPollMicroseconds = value
            default: throw Problem(description: "unknown option '\(argument)'")
            }
        }
    }

    /// The configuration of the clients under measurement, with the pool size and poll window asked for.
    func clientConfiguration(url: String) throws -> RedisConfiguration {
        var configuration = try RedisConfiguration(url: url)
        if let poolSize { configuration.poolSize = poolSize }
        if let busyPollMicroseconds { configuration.busyPollWindow = .microseconds(busyPollMicroseconds) }
        return configuration
    }

    /// The server to measure against: the given URL, or a private redis-server started for this run.
    func withServer<T>(_ body: (_ url: String, _ host: String, _ port: Int) async throws -> T) async throws -> T {
        if let redisURL {
            let configuration = try RedisConfiguration(url: redisURL)
            if tls && configuration.tls == nil {
                throw Problem(description: "--tls with --redis-url needs a rediss:// URL")
            }
            // On a cluster, redis-benchmark starts from a seed; a Sentinel set has no node to give it.
            guard case .tcp(let host, let port) = configuration.endpoint ?? configuration.cluster?.seeds.first else {
                throw Problem(description: "redis-benchmark needs a TCP server or a cluster's seed")
            }
            return try await body(redisURL, host, port)
        }
        let running = try await RedisServer.start(tls: tls ? try TLSCertificates.make() : nil, server: self.server)
        defer { running.stop() }
        return try await body(running.url, "127.0.0.1", running.port)
    }
}

import Foundation
import RedisClient
import RedisSession
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The rig's session keys rotated under load, the way an operator does it: a new key first and the old one second
/// on every instance (`SIGHUP` makes them re-read the file), every live session re-saved under the new key at its
/// next request, then the old key removed. Nobody under load is signed out.
extension Checker {
    func keyRotation(file: String, pids: [Int32], alice: Browser) throws {
        let original = try String(contentsOfFile: file, encoding: .utf8)
        let lines = original.split(whereSeparator: \.isNewline).filter { !$0.hasPrefix("#") && !$0.isEmpty }
        let current = try lines.first.orThrow("no key in \(file)")
        var random = SystemRandomNumberGenerator()
        let newID = "rig-\(UInt32.random(in: 0...UInt32.max, using: &random))"
        let newKey = "\(newID):\(Data((0..<32).map { _ in UInt8.random(in: 0...255, using: &random) }).base64EncodedString())"

        var bob = Browser()
        // bob's events are not alice's: the listener's log check follows alice's only.
        try expect(try bob.signIn(webs[1], user: "bob", password: "builder").status == 303, "bob's sign-in")
        let users = [alice, bob]

        // Steady load through the load balancer: every answer must be the signed-in page.
        let stop = Atomic<Bool>(false)
        let requests = Atomic<Int>(0)
        let signedOut = Atomic<Int>(0)
        let failed = Atomic<Int>(0)
        let lb = self.lb
        let headers = users.map(\.cookieHeader)
        let load = Thread {
            var index = 0
            while !stop.load(ordering: .relaxed) {
                defer { index += 1 }
                guard let response = try? lb.request("GET", "/", headers: headers[index % headers.count]) else {
                    failed.add(1, ordering: .relaxed)
                    continue
                }
                requests.add(1, ordering: .relaxed)
                if response.status != 200 {
                    failed.add(1, ordering: .relaxed)
                } else if response.shownTimezone == nil {
                    signedOut.add(1, ordering: .relaxed)
                }
            }
        }
        load.start()
        defer { stop.store(true, ordering: .relaxed) }

        func install(_ content: String) throws {
            try content.write(toFile: file, atomically: true, encoding: .utf8)
            for pid in pids { try expect(kill(pid, SIGHUP) == 0, "cannot signal instance \(pid)") }
            usleep(300_000)  // the instances re-read the file as the signal arrives
        }

        try install("\(newKey)\n\(current)\n")
        // Each live session's next request re-saves it under the new key, on whichever instance serves it.
        for user in users {
            var copy = user
            for web in webs {
                try expect(try copy.get(web, "/").shownTimezone != nil, "\(web) signed a user out after the new key")
            }
        }
        let stored = try users.map { user -> [String] in
            let id = try user.cookies["rsess"].flatMap(SessionID.init).orThrow("no session cookie")
            let key = SessionKeys(prefix: options.prefix).session(id)
            return try withRedis { client in
                let fields = try await client.send("HGETALL", key).array ?? []
                return stride(from: 0, to: fields.count - 1, by: 2).compactMap { index -> String? in
                    guard let name = fields[index].string, name.hasPrefix("a:") || name.hasPrefix("l:") else {
                        return nil
                    }
                    return fields[index + 1].bytes.flatMap(SessionEncryption.keyID(ofStored:)) ?? "plaintext"
                }
            }
        }
        for ids in stored {
            try expect(!ids.isEmpty && ids.allSatisfy { $0 == newID }, "a live session still holds keys \(ids)")
        }

        try install("\(newKey)\n")
        for user in users {
            var copy = user
            for web in webs {
                try expect(try copy.get(web, "/").shownTimezone != nil, "\(web) signed a user out once the old key went")
            }
        }
        usleep(200_000)
        stop.store(true, ordering: .relaxed)
        while !load.isFinished { usleep(10_000) }
        let total = requests.load(ordering: .relaxed)
        try expect(total > 0, "no request ran during the rotation")
        try expect(
            signedOut.load(ordering: .relaxed) == 0 && failed.load(ordering: .relaxed) == 0,
            "under load \(signedOut.load(ordering: .relaxed)) pages were signed out and "
                + "\(failed.load(ordering: .relaxed)) failed, of \(total)")
        figures.append(
            "session key rotation under load (new key, re-save, old key removed): \(total) requests, none signed out")
    }
}

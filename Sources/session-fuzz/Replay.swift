#if !FUZZING
    import Foundation

    /// Without the fuzzer (`scripts/fuzz` builds with it): replays corpus files through their targets, so every
    /// input the fuzzer ever kept stays a regression test.
    ///
    ///     session-fuzz Fuzz/Corpus            # every target's folder
    @main
    struct Replay {
        static func main() {
            let arguments = CommandLine.arguments.dropFirst()
            guard let root = arguments.first, arguments.count == 1 else {
                print("usage: session-fuzz CORPUS_FOLDER   (one subfolder per target: \(names))")
                exit(64)
            }
            var replayed = 0
            for target in FuzzTarget.allCases {
                let folder = URL(fileURLWithPath: root).appendingPathComponent(target.rawValue)
                let files = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
                for file in files.sorted() {
                    guard let data = FileManager.default.contents(atPath: folder.appendingPathComponent(file).path)
                    else { continue }
                    target.run(Array(data))
                    replayed += 1
                }
            }
            print("session-fuzz: replayed \(replayed) inputs, no invariant broken")
        }

        static var names: String { FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ") }
    }
#endif

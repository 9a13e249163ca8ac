import Hummingbird
import NIOCore

/// A URL-encoded form body as a dictionary (first value of a repeated field wins). Tolerant by design: the pages
/// validate the fields they need and answer with the right status, instead of a decoder's 400 or 500.
struct FormBody: Sendable {
    let fields: [String: String]

    subscript(name: String) -> String? { fields[name] }

    static func parse(_ request: Request, context: some RequestContext) async throws -> FormBody {
        let buffer = try await request.body.collect(upTo: context.maxUploadSize)
        return FormBody(fields: parse(String(buffer: buffer)))
    }

    static func parse(_ text: String) -> [String: String] { FormDecoding.fields(of: text) }
}

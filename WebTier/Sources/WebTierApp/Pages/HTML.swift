import NIOCore

/// A page being written straight into the response's buffer: markup as it is, text escaped on the way in.
///
/// The signed-in landing page is what every visitor sees on every request; built as `String`s, interpolated and
/// joined, then copied into a buffer, its rendering allocated a dozen times and cost a fifth of the difference to a
/// hello-world. Written here, it is one buffer and no intermediate string.
struct HTMLWriter {
    private(set) var buffer: ByteBuffer

    /// An empty page with room for `capacity` bytes (it grows if needed).
    init(capacity: Int) {
        buffer = ByteBufferAllocator().buffer(capacity: capacity)
    }

    /// Markup, written as it is.
    mutating func markup(_ text: StaticString) {
        buffer.writeStaticString(text)
    }

    /// Markup built at run time (the page frame's scripts, another page's body), written as it is.
    mutating func markup(_ text: String) {
        buffer.writeString(text)
    }

    /// Text for HTML content or an attribute value: `& < > " '` escaped, everything else as it is.
    mutating func text(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            var clean = 0
            for index in bytes.indices {
                let entity: StaticString
                switch bytes[index] {
                case UInt8(ascii: "&"): entity = "&amp;"
                case UInt8(ascii: "<"): entity = "&lt;"
                case UInt8(ascii: ">"): entity = "&gt;"
                case UInt8(ascii: "\""): entity = "&quot;"
                case UInt8(ascii: "'"): entity = "&#39;"
                default: continue
                }
                buffer.writeBytes(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[clean..<index])))
                buffer.writeStaticString(entity)
                clean = index + 1
            }
            buffer.writeBytes(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[clean...])))
        }
    }
}

/// Escapes text for HTML content and attribute values, for pages built as strings.
func escape(_ text: String) -> String {
    var writer = HTMLWriter(capacity: text.utf8.count + 16)
    writer.text(text)
    return String(buffer: writer.buffer)
}

/// The stylesheet, served once at `/app.css` and cached by browsers, so pages stay small.
let stylesheet = """
    body{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;color:#222}
    header{display:flex;flex-wrap:wrap;justify-content:space-between;align-items:baseline;border-bottom:1px solid #ddd;margin-bottom:1rem}
    nav a,nav button{margin-left:.75rem}
    form.inline{display:inline}
    .error{color:#a00;background:#fee;padding:.5rem;border-radius:4px}
    .muted{color:#777;font-size:.9rem}
    table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #eee}
    select{max-width:100%}
    details.agent{font-size:.8rem;color:#777;overflow-wrap:anywhere}details.agent summary{cursor:pointer}
    @media (max-width:640px){
    table.devices,.devices tbody,.devices tr,.devices td{display:block}.devices tr:first-child{display:none}
    .devices tr{border-bottom:1px solid #ddd;padding:.5rem 0}.devices td{border:0;padding:.1rem 0}
    .devices td[data-label]::before{content:attr(data-label) ": ";color:#777}
    }
    """

/// What every page of one instance shares: who serves it, and the htmx script when it is installed.
struct PageFrame: Sendable {
    /// The instance's name, shown in the footer.
    var instanceID: String
    /// The `<head>` lines that load htmx (and configure it), or nothing.
    var scripts: String

    /// A frame for an instance, loading htmx from `htmxPath` when it is there.
    init(instanceID: String, htmxPath: String?) {
        self.instanceID = instanceID
        // htmx swaps 2xx answers and, here, the 422 page of a refused form (it carries the error message); other
        // 4xx and 5xx answers are errors it does not swap. Under the Content-Security-Policy it may not `eval`, nor
        // insert its indicator `<style>`, nor run scripts in swapped content: all three are off, so it never tries.
        self.scripts =
            htmxPath.map {
                """
                <meta name="htmx-config" content='{"allowEval":false,"includeIndicatorStyles":false,\
                "allowScriptTags":false,"responseHandling":[{"code":"204","swap":false},\
                {"code":"[23]..","swap":true},{"code":"422","swap":true},{"code":"[45]..","swap":false,"error":true}]}'>
                <script src="\($0)" defer></script>

                """
            } ?? ""
    }

    /// A frame for pages rendered before an instance is known (the 503 page).
    static let bare = PageFrame(instanceID: "", htmxPath: nil)
}

/// The page frame shared by every page, around what `body` writes.
func layout(title: StaticString, frame: PageFrame, body: (inout HTMLWriter) -> Void) -> ByteBuffer {
    var page = HTMLWriter(capacity: 2048)
    page.markup(layoutHead)
    page.markup(title)
    page.markup(layoutAfterTitle)
    page.markup(frame.scripts)
    page.markup(layoutBody)
    body(&page)
    page.markup("\n<footer class=\"muted\">served by <code>")
    page.text(frame.instanceID)
    page.markup("</code></footer>\n</body>\n</html>\n")
    return page.buffer
}

/// The page frame shared by every page, around a body built as a string.
func layout(title: StaticString, frame: PageFrame, body: String) -> ByteBuffer {
    layout(title: title, frame: frame) { $0.markup(body) }
}

private let layoutHead: StaticString = """
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>
    """

private let layoutAfterTitle: StaticString = """
    </title>
    <link rel="stylesheet" href="/app.css">
    <link rel="icon" href="data:,">

    """

private let layoutBody: StaticString = """
    </head>
    <body>

    """

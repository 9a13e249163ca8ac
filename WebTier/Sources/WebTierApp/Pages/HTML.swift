/// Escapes text for HTML content and attribute values.
///
/// Most strings on these pages (timezone names, times, tokens) need no escaping: a byte scan finds that and returns
/// the string as it is, without walking grapheme clusters.
func escape(_ text: String) -> String {
    let special: (UInt8) -> Bool = { $0 == 38 || $0 == 60 || $0 == 62 || $0 == 34 || $0 == 39 }  // & < > " '
    guard text.utf8.contains(where: special) else { return text }
    var out: [UInt8] = []
    out.reserveCapacity(text.utf8.count + 16)
    for byte in text.utf8 {
        switch byte {
        case 38: out += Array("&amp;".utf8)
        case 60: out += Array("&lt;".utf8)
        case 62: out += Array("&gt;".utf8)
        case 34: out += Array("&quot;".utf8)
        case 39: out += Array("&#39;".utf8)
        default: out.append(byte)
        }
    }
    return String(decoding: out, as: UTF8.self)
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
        // 4xx and 5xx answers are errors it does not swap.
        self.scripts =
            htmxPath.map {
                """
                <meta name="htmx-config" content='{"responseHandling":[{"code":"204","swap":false},\
                {"code":"[23]..","swap":true},{"code":"422","swap":true},{"code":"[45]..","swap":false,"error":true}]}'>
                <script src="\($0)" defer></script>

                """
            } ?? ""
    }

    /// A frame for pages rendered before an instance is known (the 503 page).
    static let bare = PageFrame(instanceID: "", htmxPath: nil)
}

/// The page frame shared by every page.
func layout(title: String, frame: PageFrame, body: String) -> String {
    var page = ""
    page.reserveCapacity(layoutHead.utf8.count + body.utf8.count + frame.scripts.utf8.count + 160)
    page += layoutHead
    page += escape(title)
    page += layoutAfterTitle
    page += frame.scripts
    page += layoutBody
    page += body
    page += "\n<footer class=\"muted\">served by <code>"
    page += escape(frame.instanceID)
    page += "</code></footer>\n</body>\n</html>\n"
    return page
}

private let layoutHead = """
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>
    """

private let layoutAfterTitle = """
    </title>
    <link rel="stylesheet" href="/app.css">
    <link rel="icon" href="data:,">

    """

private let layoutBody = """
    </head>
    <body>

    """

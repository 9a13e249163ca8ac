/// Escapes text for HTML content and attribute values.
func escape(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.utf8.count)
    for character in text {
        switch character {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.append(character)
        }
    }
    return out
}

/// The page frame shared by every page.
func layout(title: String, instanceID: String, body: String) -> String {
    """
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>\(escape(title))</title>
    <style>
    body{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;color:#222}
    header{display:flex;justify-content:space-between;align-items:baseline;border-bottom:1px solid #ddd;margin-bottom:1rem}
    nav a,nav button{margin-left:.75rem}
    form.inline{display:inline}
    .error{color:#a00;background:#fee;padding:.5rem;border-radius:4px}
    .muted{color:#777;font-size:.9rem}
    table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #eee}
    </style>
    </head>
    <body>
    \(body)
    <footer class="muted">served by <code>\(escape(instanceID))</code></footer>
    </body>
    </html>
    """
}

import MLStoreBasics
import MLStoreCore

/// A rendered page or asset of the web UI.
public struct WebPage: Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]
    public init(status: Int = 200, contentType: String = "text/html; charset=utf-8", body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }
}

/// The server-rendered web UI over one store: the runs table (`/`), run pages (`/runs/<rev>`), metric
/// charts (`/compare`), lineage graphs (`/lineage/<rev or object>`), the registry (`/registry`,
/// `/registry/<model>`) and its two assets (`/static/app.css`, `/static/app.js`).
///
/// Pages are plain HTML with inline SVG charts and one small script; nothing is loaded from elsewhere,
/// so the UI works offline. Every request opens its own ``TrackingIndex`` (brought up to date with the refs
/// first), so pushes show up on the next page load and concurrent requests share no state.
///
/// ```swift
/// let ui = WebUI(repository: try Repository.open(at: "/srv/ml.mlstore"))
/// let page = try ui.render(path: "/", query: ["q": "metrics.acc > 0.9", "sort": "-metrics.acc"])
/// ```
public final class WebUI: @unchecked Sendable {
    public let repo: Repository
    public init(repository: Repository) { repo = repository }

    /// Renders the page at `path` (a GET); nil when `path` is not a UI page. Blocking: the server calls it
    /// off the event loop, possibly from several threads at once.
    /// - Parameters:
    ///   - path: the request path, percent-encoded or not (e.g. `/runs/3fa2c1`, `/lineage/fraud%40production`).
    ///   - query: decoded query parameters (``URLCoding/parseQuery(_:)`` decodes a raw query as forms send it).
    /// - Returns: the page, or nil for a path the UI does not serve.
    /// - Throws: `MLStoreError` `.notFound` for an unknown run, model or revision, `.usage` for a malformed one.
    ///   A malformed runs filter is not thrown: it renders the runs page with the parser's message (status 400).
    public func render(path: String, query: [String: String]) throws -> WebPage? {
        let raw = path.split(separator: "?", maxSplits: 1).first ?? ""
        var segments: [String] = []
        for s in raw.split(separator: "/") {
            guard let d = URLCoding.decode(s) else { throw MLStoreError(.usage, "malformed percent-encoding in \(path)") }
            segments.append(d)
        }
        let rest = segments.dropFirst().joined(separator: "/")
        switch (segments.first, segments.count) {
        case (nil, _), ("runs", 1): return try runsPage(query)
        case ("runs", _): return try runPage(rest)  // a revision may hold slashes (origin/main)
        case ("compare", 1): return try comparePage(query)
        case ("lineage", _): return try lineagePage(rest.isEmpty ? "HEAD" : rest, query)
        case ("registry", 1): return try registryPage()
        case ("registry", 2): return try modelPage(segments[1], query)
        case ("static", 2): return Assets.page(segments[1])
        default: return nil
        }
    }

    /// An error as a page in the UI's layout (for the server's 404 and 400 answers to UI paths).
    public func errorPage(status: Int, message: String, hint: String? = nil) -> WebPage {
        let title = status == 404 ? "Not found" : status == 400 ? "Bad request" : "Error \(status)"
        let body: SafeHTML = """
            <h1>\(title)</h1>
            <pre class="error">\(message)</pre>
            \(hint.map { "<p class=\"hint\">\($0)</p>" } ?? .empty)
            <p><a href="/">Back to the runs</a></p>
            """
        return page(title, nav: nil, body, status: status)
    }

    /// The error page for a thrown error (`MLStoreError` codes map as the server maps them).
    func errorPage(_ error: any Error) -> WebPage {
        guard let e = error as? MLStoreError else { return errorPage(status: 500, message: "\(error)") }
        let status = e.code == .notFound ? 404 : e.code == .usage ? 400 : 500
        return errorPage(status: status, message: e.message, hint: e.hint)
    }

    // MARK: Layout

    /// The sections of the nav bar.
    enum Section { case runs, registry, lineage }

    /// Wraps a page body in the shared layout: nav bar, main, footer with the store's location.
    func page(_ title: String, nav: Section?, _ body: SafeHTML, status: Int = 200) -> WebPage {
        func item(_ s: Section, _ href: String, _ label: String) -> SafeHTML {
            "<a href=\"\(href)\"\(s == nav ? Markup.active : .empty)>\(label)</a>"
        }
        let html: SafeHTML = """
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(title) · mlstore</title>
            <link rel="icon" href="data:,">
            <link rel="stylesheet" href="/static/app.css">
            </head>
            <body>
            <header class="topbar">
            <a class="brand" href="/">mlstore</a>
            <nav>\(item(.runs, "/", "Runs"))\(item(.registry, "/registry", "Registry"))\(item(.lineage, Link.lineage("HEAD"), "Lineage of HEAD"))</nav>
            </header>
            <main>
            \(body)
            </main>
            <footer>store <code>\(repo.storeDirectory)</code></footer>
            <script src="/static/app.js"></script>
            </body>
            </html>

            """
        return WebPage(status: status, body: Array(html.text.utf8))
    }

    /// Opens the query index, synced with the refs (one per request: see the type's notes).
    func openIndex() throws -> TrackingIndex { try TrackingIndex.open(repo) }
}

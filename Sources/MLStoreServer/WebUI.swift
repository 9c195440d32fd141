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

/// The server-rendered web UI over one store (runs, run pages, charts, lineage, registry).
public final class WebUI: @unchecked Sendable {
    public let repo: Repository
    public init(repository: Repository) { repo = repository }

    /// Renders the page at `path` (a GET); nil when `path` is not a UI page. Blocking: the server calls it
    /// off the event loop.
    public func render(path: String, query: [String: String]) throws -> WebPage? {
        nil
    }
}

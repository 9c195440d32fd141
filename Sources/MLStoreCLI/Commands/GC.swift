import ArgumentParser
import Foundation
import MLStoreBasics
import MLStoreCore

/// Parses sizes like `50G`, `512MiB`, `1.5T`, `100000` (binary units: K = 1024).
enum SizeArgument {
    static func parse(_ text: String) throws -> Int64 {
        let t = text.trimmingCharacters(in: .whitespaces).uppercased()
        var numberPart = t
        var unit = ""
        while let last = numberPart.last, last.isLetter {
            unit = String(last) + unit
            numberPart.removeLast()
        }
        let scale: Double
        switch unit {
        case "", "B": scale = 1
        case "K", "KB", "KIB": scale = 1024
        case "M", "MB", "MIB": scale = 1024 * 1024
        case "G", "GB", "GIB": scale = 1024 * 1024 * 1024
        case "T", "TB", "TIB": scale = 1024 * 1024 * 1024 * 1024
        default: throw MLStoreError(.usage, "'\(text)' is not a size", hint: "use bytes or a number with K, M, G or T (binary units), e.g. 50G")
        }
        guard let n = Double(numberPart.trimmingCharacters(in: .whitespaces)), n >= 0, n * scale < 9e18 else {
            throw MLStoreError(.usage, "'\(text)' is not a size", hint: "e.g. 50G, 512M, 1.5T")
        }
        return Int64(n * scale)
    }
}

extension MLStoreCommand {
    static func printGC(_ r: GCReport, verb: String = "gc") {
        let b = r.before, a = r.after
        print("\(r.dryRun ? "would free" : "freed") \(Terminal.bytes(r.freedBytes)): \(Terminal.bytes(b.bytes)) → \(Terminal.bytes(a.bytes)) "
            + "(\(b.objects) → \(a.objects) stored objects, \(b.packs) → \(a.packs) packs, \(b.looseObjects) → \(a.looseObjects) loose)")
        var parts = ["\(r.reachableObjects) reachable", "\(r.unreachableObjects) unreachable"]
        parts.append("\(r.removedObjects) \(r.dryRun ? "to remove" : "removed")")
        if r.keptYoungObjects > 0 { parts.append("\(r.keptYoungObjects) kept (younger than the grace period, --prune \(r.prune))") }
        if r.evictedObjects > 0 { parts.append("\(r.evictedObjects) evicted") }
        print(parts.joined(separator: ", "))
        if r.missingContent > 0 { print(Terminal.paint("\(r.missingContent) file contents are not in this partial store (fetched on demand)", .dim)) }
        if !r.packsWritten.isEmpty || r.packsRemoved + r.looseRemoved + r.tempFilesRemoved > 0 {
            let wrote = r.dryRun ? "" : "wrote \(r.packsWritten.count) pack(s); "
            let what = r.dryRun ? "would remove" : "removed"
            print(Terminal.paint(wrote + "\(what) \(r.packsRemoved) pack(s), \(r.looseRemoved) loose file(s), \(r.tempFilesRemoved) temporary file(s)", .dim))
        }
        if r.leasesWaitedFor > 0 { print(Terminal.paint(String(format: "waited %.1f s for %d push(es) to finish", r.waitedSeconds, r.leasesWaitedFor), .dim)) }
        for n in r.notes { print(Terminal.paint("note: " + n, .dim)) }
    }

    struct GC: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gc",
            abstract: "Delete unreachable objects older than the grace period and repack (locally, or on a directory remote).",
            discussion: """
                Keeps everything reachable from refs (branches, tags, every target in every stage history, runs, \
                remote-tracking refs), HEAD, every reflog line and the index, plus unreachable objects younger than \
                the grace period (--prune, default 2 weeks or gc.prune). Loose objects and sparse packs are copied \
                into a new pack that is published before anything is deleted. --prune now is unsafe while other \
                processes write to the store. With --remote, pushes in progress are waited for (spec/remote.md \
                §Garbage collection). --local-cache --max-size SIZE also evicts file contents the remote holds \
                (as `mlstore cache`).
                """)

        @Flag(name: .customLong("dry-run"), help: "Report what would be freed; change nothing.") var dryRun = false
        @Option(help: "Grace period for unreachable objects: now, never, 90s, 12h, 3d, 2w, 2.weeks.ago (default: gc.prune or 2w).")
        var prune: String?
        @Option(help: "Collect a directory remote (name or path) instead of this store.") var remote: String?
        @Option(help: "With --remote: seconds to wait for pushes in progress before giving up (exit 8).") var wait: Double = 60
        @Flag(name: .customLong("local-cache"), help: "Also evict least recently used contents the remote holds (needs --max-size).")
        var localCache = false
        @Option(name: .customLong("max-size"), help: "With --local-cache: target store size, e.g. 50G.") var maxSize: String?
        @OptionGroup var options: StoreOptions

        func validate() throws {
            if localCache && maxSize == nil { throw ValidationError("--local-cache needs --max-size") }
            if maxSize != nil && !localCache { throw ValidationError("--max-size goes with --local-cache (or use `mlstore cache --max-size`)") }
            if localCache && remote != nil { throw ValidationError("--local-cache applies to this clone; name its remote with `mlstore cache --remote`") }
        }

        func run() throws {
            let repo: Repository? = try? options.repository()
            var o = GCOptions(prune: try prune.map(PruneAge.parse) ?? repo?.configuredPrune() ?? .standard, dryRun: dryRun)
            o.leaseWaitSeconds = wait
            if let remote {
                let report: GCReport
                if let repo {
                    report = try repo.collectRemoteGarbage(remote, options: o)
                } else {
                    report = try Repository.collectRemoteGarbage(try Repository.transport(for: remote), options: o)
                }
                if options.json { return try Terminal.printJSON(report) }
                print("gc of \(report.store)")
                MLStoreCommand.printGC(report)
                return
            }
            let r = try options.repository()
            if localCache, let maxSize {
                let report = try r.trimCache(CacheOptions(maxBytes: try SizeArgument.parse(maxSize), dryRun: dryRun, prune: o.prune))
                if options.json { return try Terminal.printJSON(report) }
                MLStoreCommand.printCache(report)
                return
            }
            let report = try r.collectGarbage(o)
            if options.json { return try Terminal.printJSON(report) }
            MLStoreCommand.printGC(report)
        }
    }

    static func printCache(_ r: CacheReport) {
        let verb = r.gc.dryRun ? "would evict" : "evicted"
        print("\(verb) \(r.evictedFiles) file(s), \(r.evictedObjects) object(s), \(Terminal.bytes(r.evictedBytes)) (\(r.remote) holds them); "
            + "live objects \(Terminal.bytes(r.liveBytesBefore)) → \(Terminal.bytes(r.liveBytesAfter)), limit \(Terminal.bytes(r.maxBytes))")
        if !r.reachedLimit {
            print(Terminal.paint("cannot go below the limit: \(Terminal.bytes(r.pinnedBytes)) are metadata or contents \(r.remote) lacks (push them to make them evictable)", .yellow))
        }
        if r.markedPartial { print(Terminal.paint("remote.\(r.remote).partial = true: checkouts fetch evicted contents again", .dim)) }
        printGC(r.gc)
    }

    struct Cache: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "cache",
            abstract: "Keep this clone's store under a size: evict least recently used contents the remote still holds.",
            discussion: """
                Evicts file contents (never metadata, never contents the remote lacks) that are reachable from the \
                remote's refs, least recently used first (reads are recorded in .mlstore/cache/access.log once the \
                cache is enabled; before that, arrival time counts), until the store takes at most --max-size. \
                The limit is saved as cache.maxSize; `mlstore cache` without --max-size applies it again, or shows \
                the cache when none is set. Afterwards the remote is marked partial: checkouts fetch what they need.
                """)

        @Option(name: .customLong("max-size"), help: "Target store size, e.g. 50G (binary units); saved as cache.maxSize.") var maxSize: String?
        @Option(help: "The remote that must hold evicted contents (default: the partial remote, else origin).") var remote: String?
        @Flag(name: .customLong("dry-run"), help: "Report what would be evicted; change nothing.") var dryRun = false
        @Option(help: "Grace period for unreachable objects (as gc --prune).") var prune: String?
        @OptionGroup var options: StoreOptions

        func run() throws {
            let repo = try options.repository()
            var limit = try maxSize.map(SizeArgument.parse)
            if limit == nil, let saved = try repo.config().get("cache.maxsize") { limit = try SizeArgument.parse(saved) }
            let prune = try self.prune.map(PruneAge.parse) ?? repo.configuredPrune()
            guard let limit else {
                // Status: what a limit of 0 would evict, without doing it.
                let r = try repo.trimCache(CacheOptions(maxBytes: 0, remote: remote, dryRun: true, prune: prune))
                if options.json { return try Terminal.printJSON(r) }
                print("store: \(Terminal.bytes(r.gc.before.bytes)) on disk, \(Terminal.bytes(r.liveBytesBefore)) live")
                print("evictable: \(Terminal.bytes(r.evictedBytes)) of file contents \(r.remote) holds; pinned: \(Terminal.bytes(r.pinnedBytes))")
                print("no size limit set (mlstore cache --max-size 50G)")
                return
            }
            if let maxSize, !dryRun {
                var cfg = try repo.config()
                cfg.set("cache.maxSize", maxSize)
                try cfg.save()
            }
            let report = try repo.trimCache(CacheOptions(maxBytes: limit, remote: remote, dryRun: dryRun, prune: prune))
            if options.json { return try Terminal.printJSON(report) }
            MLStoreCommand.printCache(report)
        }
    }

    struct Du: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "du",
            abstract: "Logical vs. stored bytes and what deduplication and compression save.",
            discussion: """
                With revisions: their snapshots (trees). Without: every snapshot reachable from refs, reflogs and \
                stage histories, plus the store's size on disk and its unreachable bytes. Logical = the files' sizes \
                summed over the snapshots; stored = each distinct object once, as stored (compressed where it pays).
                """)

        @Argument(help: "Revisions (commits, tags, model@stage, trees); default: everything.") var revisions: [String] = []
        @Option(help: "Also list the N largest files.") var top: Int = 0
        @OptionGroup var options: StoreOptions

        func run() throws {
            let r = try options.repository().diskUsage(revisions: revisions, top: top)
            if options.json { return try Terminal.printJSON(r) }
            let what = revisions.isEmpty ? "all history" : revisions.joined(separator: ", ")
            print("\(what): \(r.snapshots) snapshot(s), \(r.files) file(s)")
            print("  logical   \(Terminal.bytes(r.logicalBytes).leftPad(12))")
            print("  unique    \(Terminal.bytes(r.uniqueContentBytes).leftPad(12))   dedup saves \(Terminal.bytes(r.dedupSavedBytes))")
            print("  stored    \(Terminal.bytes(r.storedBytes).leftPad(12))   contents \(Terminal.bytes(r.storedContentBytes)) (compression saves \(Terminal.bytes(r.compressionSavedBytes))), metadata \(Terminal.bytes(r.storedMetadataBytes))")
            print("  saved     \(Terminal.bytes(r.savedBytes).leftPad(12))   \(String(format: "%.1f", r.savedPercent)) % of logical")
            if r.missingObjects > 0 {
                print(Terminal.paint("  \(r.missingObjects) objects (\(Terminal.bytes(r.missingBytes))) are not in this store (partial clone or evicted cache): counted as unique, not as stored", .dim))
            }
            if let s = r.store {
                print("store: \(Terminal.bytes(s.usage.bytes)) on disk in \(s.usage.packs) pack(s) and \(s.usage.looseObjects) loose object(s); unreachable \(Terminal.bytes(s.unreachableBytes)) (gc)")
            }
            if !r.top.isEmpty {
                print("largest files:")
                for e in r.top { print("  \(Terminal.bytes(e.logicalBytes).leftPad(12))  stored \(Terminal.bytes(e.storedBytes).leftPad(12))  \(e.path)") }
            }
        }
    }
}

import ArgumentParser
import MLStoreBasics
import MLStoreCore

extension MLStoreCommand {
    struct Checkout: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "checkout",
            abstract: "Restore files from a tree or from the index.",
            discussion: """
                mlstore checkout <branch>            switch to a branch (as `mlstore switch`)
                mlstore checkout <commit>            detach HEAD at a commit (any revision: id, tag, HEAD~2, model@stage)
                mlstore checkout <tree>              make the workspace match a tree (HEAD does not move)
                mlstore checkout <rev> -- <path>...  restore only those paths from a commit or tree
                mlstore checkout -- <path>...        discard workspace changes: restore the staged versions
                Switching refuses to lose local edits unless --force; edits to paths the switch does not change \
                are kept.
                Files are restored byte for byte with their modes and symlinks. Nothing is ever written outside \
                the workspace or through a symlink.
                """)

        @Argument(help: "A branch, commit, tag, model@stage, or tree id.")
        var revision: String?

        @Argument(parsing: .postTerminator, help: "Paths to restore (after --).")
        var paths: [String] = []

        @Flag(name: .shortAndLong, help: "Discard local changes and overwrite untracked files in the way.")
        var force = false

        @OptionGroup var options: StoreOptions

        func validate() throws {
            if revision == nil && paths.isEmpty {
                throw ValidationError("give a tree to check out, or `-- <path>...` to restore staged files")
            }
        }

        func run() throws {
            let ws = try options.workspace()
            let cwd = Sys.currentDirectory()
            let rels = try paths.map { try ws.relativePath($0, cwd: cwd) }
            let progress = Terminal.progressBar()
            let report: CheckoutReport
            if let revision, rels.isEmpty, (try ws.repo.refs.read("refs/heads/" + revision)) != nil, !revision.hasPrefix("refs/") {
                report = try ws.switchBranch(revision, force: force, progress: progress)
                if !options.json { print("Switched to branch '\(revision)'") }
            } else if let revision, rels.isEmpty, try ws.repo.objects.info(try ws.repo.resolve(revision)).kind != .tree {
                let (id, r) = try ws.detach(at: revision, force: force, progress: progress)
                report = r
                if !options.json { print("HEAD is now at \(id.short) (detached)") }
            } else if let revision {
                let tree = try ws.repo.resolveTree(revision)
                report = try ws.checkout(tree: tree, paths: rels.isEmpty ? nil : rels, options: .init(force: force), progress: progress)
            } else {
                report = try ws.checkoutFromIndex(rels, progress: progress)
            }
            if options.json { return try Terminal.printJSON(report) }
            for p in report.removed { print("\(Terminal.paint("removed", .red))  \(p)") }
            for p in report.written { print("\(Terminal.paint("restored", .green)) \(p)") }
            print(Terminal.paint("\(report.written.count) restored (\(Terminal.bytes(report.bytesWritten))), \(report.removed.count) removed, \(report.unchanged) already up to date", .dim))
        }
    }
}

import ArgumentParser
import MLStoreBasics
import MLStoreCore

extension MLStoreCommand {
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "status",
            abstract: "Show staged changes, unstaged changes and untracked files.",
            discussion: "Untracked files are listed inside tracked directories only (so code kept in git does not drown the output); --untracked lists them everywhere.")

        @Flag(name: .shortAndLong, help: "List untracked files in the whole workspace.")
        var untracked = false

        @OptionGroup var options: StoreOptions

        func run() throws {
            let ws = try options.workspace()
            let report = try ws.status(.init(allUntracked: untracked, baseTree: try ws.repo.headTree()))
            if options.json { return try Terminal.printJSON(report) }
            let head = try ws.repo.refs.head()
            if let b = head.branchName { print("On branch \(b)") } else if let c = head.commit { print("HEAD detached at \(c.short)") }
            if report.isClean {
                print("nothing to commit, workspace clean")
                return
            }
            func label(_ c: StatusReport.Change) -> String {
                switch c {
                case .added: "new file:    "
                case .modified: "modified:    "
                case .deleted: "deleted:     "
                case .typeChanged: "type change: "
                }
            }
            if !report.staged.isEmpty {
                print("Changes to be committed:")
                for i in report.staged { print("  " + Terminal.paint(label(i.change) + i.path, .green)) }
                print("")
            }
            if !report.unstaged.isEmpty {
                print("Changes not staged (use `mlstore add <path>` to stage, `mlstore checkout -- <path>` to discard):")
                for i in report.unstaged { print("  " + Terminal.paint(label(i.change) + i.path, .red)) }
                print("")
            }
            if !report.untracked.isEmpty {
                print("Untracked files (use `mlstore add <path>` to track):")
                for p in report.untracked { print("  " + Terminal.paint(p, .red)) }
                print("")
            }
        }
    }
}

import ArgumentParser
import MLStoreBasics
import MLStoreCore

extension MLStoreCommand {
    struct Branch: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "branch",
            abstract: "List, create or delete branches.",
            discussion: "mlstore branch                 list\nmlstore branch <name> [<rev>]  create at <rev> (default HEAD)\nmlstore branch -d <name>       delete")

        @Argument(help: "Branch to create.")
        var name: String?

        @Argument(help: "Start point (default HEAD).")
        var startPoint: String?

        @Flag(name: .shortAndLong, help: "Delete the branch.")
        var delete = false

        @OptionGroup var options: StoreOptions

        func run() throws {
            let repo = try options.repository()
            let actor = try repo.identity()
            if delete {
                guard let name else { throw ValidationError("give the branch to delete") }
                let ref = "refs/heads/" + name
                guard let id = try repo.refs.read(ref) else { throw MLStoreError(.notFound, "no branch named \(name)") }
                if try repo.refs.head().branchName == name {
                    throw MLStoreError(.conflict, "cannot delete the current branch \(name)", hint: "switch to another branch first")
                }
                try repo.refs.update(ref, to: nil, expecting: .value(id), actor: actor, message: "branch: deleted")
                print("Deleted branch \(name) (was \(id.short))")
                return
            }
            if let name {
                let start = try startPoint.map { try repo.resolveCommit($0) } ?? repo.refs.head().commit
                guard let start else { throw MLStoreError(.notFound, "no commits yet to branch from", hint: "commit first") }
                try repo.refs.update("refs/heads/" + name, to: start, expecting: .absent, actor: actor, message: "branch: created from \(startPoint ?? "HEAD")")
                if options.json { return try Terminal.printJSON(["branch": name, "commit": start.hex]) }
                print("Created branch \(name) at \(start.short)")
                return
            }
            let current = try repo.refs.head().branchName
            let branches = repo.refs.list("refs/heads/")
            if options.json {
                struct Row: Encodable { var name: String; var commit: String; var current: Bool }
                return try Terminal.printJSON(branches.map { Row(name: String($0.name.dropFirst(11)), commit: $0.id.hex, current: String($0.name.dropFirst(11)) == current) })
            }
            for (ref, id) in branches {
                let b = String(ref.dropFirst(11))
                let subject = (try? repo.commit(id).subject) ?? ""
                print((b == current ? "* " + Terminal.paint(b, .green) : "  " + b) + "  " + Terminal.paint(id.short, .yellow) + " " + subject)
            }
        }
    }

    struct Switch: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "switch", abstract: "Switch to a branch (restoring its files); -c creates it first.")

        @Argument(help: "The branch.")
        var branch: String

        @Flag(name: .customShort("c"), help: "Create the branch at the start point first.")
        var create = false

        @Argument(help: "Start point for -c (default HEAD).")
        var startPoint: String?

        @Flag(name: .shortAndLong, help: "Discard local changes that would be lost.")
        var force = false

        @OptionGroup var options: StoreOptions

        func run() throws {
            let ws = try options.workspace()
            let report = try ws.switchBranch(branch, create: create, startPoint: startPoint, force: force, progress: Terminal.progressBar())
            if options.json { return try Terminal.printJSON(report) }
            print("Switched to \(create ? "a new " : "")branch '\(branch)' (\(report.written.count) restored, \(report.removed.count) removed)")
        }
    }

    struct Tag: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "tag",
            abstract: "Create, list or delete tags.",
            discussion: "mlstore tag <name> [<rev>] [-m msg]   create (annotated with -m)\nmlstore tag --list\nmlstore tag --delete <name>")

        @Argument(help: "Tag name.")
        var name: String?

        @Argument(help: "Revision to tag (default HEAD).")
        var revision: String?

        @Option(name: .shortAndLong, help: "Message; makes an annotated tag object.")
        var message: String?

        @Flag(name: .shortAndLong, help: "List tags.")
        var list = false

        @Flag(name: .shortAndLong, help: "Delete the tag.")
        var delete = false

        @OptionGroup var options: StoreOptions

        func run() throws {
            let repo = try options.repository()
            let actor = try repo.identity()
            if delete {
                guard let name else { throw ValidationError("give the tag to delete") }
                guard let id = try repo.refs.read("refs/tags/" + name) else { throw MLStoreError(.notFound, "no tag named \(name)") }
                try repo.refs.update("refs/tags/" + name, to: nil, expecting: .value(id), actor: actor, message: "tag: deleted")
                Tracking.refresh(repo)
                print("Deleted tag \(name) (was \(id.short))")
                return
            }
            if let name, !list {
                let target = try repo.resolveCommit(revision ?? "HEAD")
                var value = target
                if let message {
                    let t = TagObject(object: target, kind: .commit, name: name, tagger: actor, message: message.hasSuffix("\n") ? message : message + "\n")
                    value = try repo.objects.write(kind: .tag, payload: t.encoded())
                }
                try repo.refs.update("refs/tags/" + name, to: value, expecting: .absent, actor: actor, message: "tag: \(name)")
                Tracking.refresh(repo)
                if options.json { return try Terminal.printJSON(["tag": name, "object": value.hex, "commit": target.hex]) }
                print("Tagged \(target.short) as \(name)\(message != nil ? " (annotated)" : "")")
                return
            }
            let tags = repo.refs.list("refs/tags/")
            if options.json {
                return try Terminal.printJSON(tags.map { t -> [String: String] in
                    ["name": String(t.name.dropFirst(10)), "object": t.id.hex, "commit": ((try? repo.peelToCommit(t.id, revision: t.name)) ?? t.id).hex]
                })
            }
            for (ref, id) in tags {
                let c = (try? repo.peelToCommit(id, revision: ref)) ?? id
                print("\(String(ref.dropFirst(10)).padding(toLength: 20, withPad: " ", startingAt: 0)) \(Terminal.paint(c.short, .yellow)) \((try? repo.commit(c).subject) ?? "")")
            }
        }
    }
}

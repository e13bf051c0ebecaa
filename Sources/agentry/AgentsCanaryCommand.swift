import AgentryRuntime
import AgentryStore
import ArgumentParser

extension Agentry.Agents {
    /// `agentry agents promote ID`: the canary becomes the current version.
    struct Promote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make an agent's canary its current version (a normal publish of it), ending the canary.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "Agent id.") var id: String

        func run() async throws {
            let id = self.id
            do {
                let publication = try await withRegistry(options) { try await $0.promoteCanary(agentID: id) }
                print("promoted \(id) \(publication.version): it is the current version" + (publication.previousVersion.map { " (was \($0))" } ?? ""))
            } catch {
                throw fail(error)
            }
        }
    }

    /// `agentry agents rollback ID`: the canary ends.
    struct Rollback: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End an agent's canary: every event goes to the current version again (the canary's version stays published).")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "Agent id.") var id: String

        func run() async throws {
            let id = self.id
            do {
                let ended = try await withRegistry(options) { try await $0.rollbackCanary(agentID: id) }
                print(
                    "rolled back the canary \(id) \(ended.version) (it ran \(ended.percent)% of the events); every event goes to the current version")
            } catch {
                throw fail(error)
            }
        }
    }
}

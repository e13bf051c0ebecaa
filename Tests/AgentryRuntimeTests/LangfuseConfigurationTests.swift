import AgentryCore
import Foundation
import Testing

@testable import AgentryRuntime

/// Langfuse tracing is configured by all three of its variables or none, and refuses a host that is not http(s).
@Suite("Langfuse configuration")
struct LangfuseConfigurationTests {
    static let complete = [
        "LANGFUSE_HOST": "https://cloud.langfuse.com/", "LANGFUSE_PUBLIC_KEY": "pk-lf-1", "LANGFUSE_SECRET_KEY": "sk-lf-2",
    ]

    @Test("none of the variables: no tracing")
    func none() throws {
        #expect(try LangfuseConfiguration.resolve(environment: [:]) == nil)
        #expect(try AgentryConfiguration.resolve(environment: [:]).langfuse == nil)
    }

    @Test("all three: the ingestion endpoint under the host, Basic authentication with the key pair")
    func complete() throws {
        let configuration = try #require(try AgentryConfiguration.resolve(environment: Self.complete).langfuse)
        #expect(configuration.ingestionURL == "https://cloud.langfuse.com/api/public/ingestion")
        #expect(configuration.authorization == "Basic " + Data("pk-lf-1:sk-lf-2".utf8).base64EncodedString())
        #expect(!"\(configuration)".contains("sk-lf-2"))
    }

    @Test("a partial set is an error naming what is missing")
    func partial() {
        var environment = Self.complete
        environment["LANGFUSE_SECRET_KEY"] = nil
        environment["LANGFUSE_PUBLIC_KEY"] = ""
        #expect {
            try AgentryConfiguration.resolve(environment: environment)
        } throws: { error in
            let text = "\(error)"
            return text.contains("LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY not set") && text.contains("LANGFUSE_HOST is set")
        }
    }

    @Test(
        "a host that is not an http or https URL is refused",
        arguments: ["cloud.langfuse.com", "ftp://langfuse.example", "https://", "https://h/?a=1"])
    func badHost(_ host: String) {
        var environment = Self.complete
        environment["LANGFUSE_HOST"] = host
        #expect(throws: ConfigurationError.self) { try LangfuseConfiguration.resolve(environment: environment) }
    }

    @Test("long texts are cut at a character boundary and marked")
    func cut() {
        let text = String(repeating: "é", count: 1000)
        let cut = LangfuseIngestion.cut(text, to: 500)
        #expect(cut.utf8.count <= 500)
        #expect(cut.hasSuffix("[…cut by agentry: 2000 bytes]"))
        #expect(LangfuseIngestion.cut("short", to: 500) == "short")
    }
}

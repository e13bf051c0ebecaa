import AMQP
import Testing

@testable import AgentryRuntime

/// AGENTRY_AMQP_URL (and --amqp-url) take the URLs of a cluster's nodes as one comma-separated list.
@Suite("AGENTRY_AMQP_URL lists")
struct AMQPURLListConfigurationTests {
    @Test("a list in AGENTRY_AMQP_URL gives every node, in order; --amqp-url overrides it the same way")
    func list() throws {
        let environment = ["AGENTRY_AMQP_URL": "amqp://guest:guest@10.0.0.1:5701/v, amqp://guest:guest@10.0.0.1:5702/v"]
        let configuration = try AgentryConfiguration.resolve(environment: environment)
        #expect(configuration.amqp.endpoints.map(\.description) == ["10.0.0.1:5701", "10.0.0.1:5702"])
        #expect(configuration.amqp.virtualHost == "v")
        let overridden = try AgentryConfiguration.resolve(
            .init(amqpURL: "amqp://a:b@n1:5672/w,amqp://a:b@n2:5672/w,amqp://a:b@n3:5672/w"), environment: environment)
        #expect(overridden.amqp.endpoints.map(\.host) == ["n1", "n2", "n3"])
    }

    @Test("a list whose URLs differ in their vhost is refused, the variable named and the password hidden")
    func mismatch() {
        #expect {
            try AgentryConfiguration.resolve(environment: ["AGENTRY_AMQP_URL": "amqp://u:topsecret@a/v1,amqp://u:topsecret@b/v2"])
        } throws: { error in
            let text = "\(error)"
            return text.contains("AGENTRY_AMQP_URL") && text.contains("vhost") && !text.contains("topsecret")
        }
    }
}

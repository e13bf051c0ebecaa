import Testing

@testable import AMQP

/// AGENTRY_AMQP_URL as a comma-separated list of the nodes of a cluster: endpoints in order, everything else shared.
@Suite("AMQP URL lists")
struct URLListTests {
    @Test("a list gives its endpoints in order, whitespace around the commas ignored, host and port the first one's")
    func endpointsInOrder() throws {
        let configuration = try AMQPConfiguration(
            url: " amqp://agent:s3cret@10.0.0.1:5701/prod , amqp://agent:s3cret@10.0.0.1:5702/prod,\tamqp://agent:s3cret@node3/prod ")
        #expect(
            configuration.endpoints == [
                .init(host: "10.0.0.1", port: 5701), .init(host: "10.0.0.1", port: 5702), .init(host: "node3", port: 5672),
            ])
        #expect(configuration.host == "10.0.0.1" && configuration.port == 5701)
        #expect(configuration.user == "agent" && configuration.password == "s3cret" && configuration.virtualHost == "prod")
        #expect(
            configuration.redactedURL == "amqp://agent@10.0.0.1:5701/prod,amqp://agent@10.0.0.1:5702/prod,amqp://agent@node3:5672/prod")
    }

    @Test("one URL is a list of one endpoint, as before")
    func single() throws {
        let configuration = try AMQPConfiguration(url: "amqps://u:p@broker.example:5671/%2f?heartbeat=10&verify=verify_none")
        #expect(configuration.endpoints == [.init(host: "broker.example", port: 5671)])
        #expect(configuration.options.heartbeat == 10)
        #expect(configuration.tls?.verifyPeer == false)
        #expect(configuration.redactedURL == "amqps://u@broker.example:5671/%2F")
    }

    @Test("the shared parts carry to every endpoint: parameters and TLS settings")
    func sharedParameters() throws {
        let configuration = try AMQPConfiguration(
            url: "amqps://u:p@a:5671/v?heartbeat=5&cacertfile=/ca.pem,amqps://u:p@b:5671/v?heartbeat=5&cacertfile=/ca.pem")
        #expect(configuration.endpoints.map(\.host) == ["a", "b"])
        #expect(configuration.options.heartbeat == 5)
        #expect(configuration.tls?.caCertificateFile == "/ca.pem")
    }

    @Test(
        "URLs that differ in more than host and port are refused, naming both URLs and what differs, never the password",
        arguments: [
            ("amqp://u:p@a/v,amqps://u:p@b/v", "scheme"),
            ("amqp://u:p@a/v,amqp://w:p@b/v", "user"),
            ("amqp://u:hunter2@a/v,amqp://u:hunter3@b/v", "password"),
            ("amqp://u:p@a/v,amqp://u:p@b/w", "vhost"),
            ("amqp://u:p@a/v,amqp://u:p@b", "vhost"),
            ("amqp://u:p@a/v?heartbeat=5,amqp://u:p@b/v", "parameters"),
            ("amqps://u:p@a/v?cacertfile=/x.pem,amqps://u:p@b/v", "parameters"),
        ])
    func mismatch(list: String, part: String) {
        #expect {
            try AMQPConfiguration(url: list)
        } throws: { error in
            guard let error = error as? AMQPError, error.code == .invalidURL else { return false }
            return error.message.contains("in its \(part)") && error.message.contains("@a") && error.message.contains("@b")
                && !error.message.contains("hunter") && !error.message.contains(":p@")
        }
    }

    @Test(
        "an empty element, a bad URL in the list or the same endpoint twice is refused",
        arguments: [
            ("amqp://u:p@a/v,", "empty element"),
            ("amqp://u:p@a/v,,amqp://u:p@b/v", "empty element"),
            ("amqp://u:p@a/v,http://u:p@b/v", "scheme 'http'"),
            ("amqp://u:p@a/v,amqp://u:p@b:70000/v", "70000"),
            ("amqp://u:p@a:5672/v,amqp://u:p@a/v", "a:5672 twice"),
            ("   ", "no URL"),
        ])
    func refused(list: String, expected: String) {
        #expect {
            try AMQPConfiguration(url: list)
        } throws: { error in
            (error as? AMQPError)?.code == .invalidURL && "\(error)".contains(expected)
        }
    }

    @Test("the endpoints can be set, and host and port still name the first")
    func settable() {
        var configuration = AMQPConfiguration(host: "x", port: 1)
        configuration.endpoints = [.init(host: "a", port: 2), .init(host: "b", port: 3)]
        configuration.port = 4
        #expect(configuration.endpoints == [.init(host: "a", port: 4), .init(host: "b", port: 3)])
        #expect(AMQPConfiguration.Endpoint(host: "::1", port: 5672).description == "[::1]:5672")
    }
}

import AMQP
import AgentryRuntime
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// amqps:// through rabbitmq-c's OpenSSL socket. RabbitMQ itself listens without TLS here, so the test puts a TLS
/// terminator (socat, with a certificate from a throwaway CA) in front of it: the client does a real TLS handshake,
/// verifies the chain against the CA file from the URL and checks the host name.
@Suite("AMQP over TLS")
struct TLSTests {
    final class Terminator {
        let directory: URL
        let pid: Int32
        let port: Int

        init() throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("agentry-tls-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let d = directory.path
            let steps: [[String]] = [
                [
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=Agentry Test CA", "-keyout", "\(d)/ca.key", "-out",
                    "\(d)/ca.pem",
                ],
                ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "\(d)/server.key", "-out", "\(d)/server.csr"],
                [
                    "x509", "-req", "-in", "\(d)/server.csr", "-CA", "\(d)/ca.pem", "-CAkey", "\(d)/ca.key", "-CAcreateserial", "-days", "1",
                    "-extfile", "\(d)/ext.cnf", "-out", "\(d)/server.pem",
                ],
                [
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=Someone Else", "-keyout", "\(d)/other.key", "-out",
                    "\(d)/other.pem",
                ],
            ]
            try "subjectAltName=DNS:localhost,IP:127.0.0.1\n".write(toFile: "\(d)/ext.cnf", atomically: true, encoding: .utf8)
            for step in steps {
                let result = try TestEnvironment.run("openssl", step)
                guard result.status == 0 else { throw TopologyTestError("openssl \(step[0]) failed: \(result.output)") }
            }
            try (String(contentsOfFile: "\(d)/server.pem", encoding: .utf8) + String(contentsOfFile: "\(d)/server.key", encoding: .utf8))
                .write(toFile: "\(d)/server-bundle.pem", atomically: true, encoding: .utf8)
            port = Int.random(in: 20000...40000)
            let amqp = TestEnvironment.configuration.amqp
            // Started in the background by a shell that prints its pid, so that stopping it is a plain kill. The shell
            // closes every inherited descriptor above 2 first: Foundation's Process watches one of them to notice that
            // the shell exited, and socat must not keep it open.
            let started = try TestEnvironment.run(
                "bash",
                [
                    "-c",
                    "for fd in $(ls /proc/$$/fd); do [ $fd -gt 2 ] && eval \"exec $fd>&-\" 2>/dev/null; done; socat openssl-listen:\(port),reuseaddr,fork,cert=\(d)/server-bundle.pem,verify=0 tcp:\(amqp.host):\(amqp.port) >/dev/null 2>&1 </dev/null & echo $!",
                ])
            guard let pid = Int32(started.output.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw TopologyTestError("cannot start socat: \(started.output)")
            }
            self.pid = pid
            // Wait until it listens.
            for _ in 0..<100 {
                if (try? TestEnvironment.run("bash", ["-c", "exec 3<>/dev/tcp/127.0.0.1/\(port)"]).status) == 0 { return }
                usleep(50_000)
            }
            throw TopologyTestError("socat did not listen on port \(port)")
        }

        func stop() {
            kill(pid, SIGTERM)
            blockingWaitForExit(pid: pid, timeout: .seconds(2))
            try? FileManager.default.removeItem(at: directory)
        }
    }

    struct TopologyTestError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    @Test("an amqps:// URL with the CA file connects, verifies the broker, and publishes and consumes")
    func tlsRoundTrip() async throws {
        let terminator = try Terminator()
        defer { terminator.stop() }
        let amqp = TestEnvironment.configuration.amqp
        let url =
            "amqps://\(amqp.user):\(amqp.password)@localhost:\(terminator.port)/\(amqp.virtualHostPathSegment)?cacertfile=\(terminator.directory.path)/ca.pem"
        let configuration = try AMQPConfiguration(url: url)
        #expect(configuration.tls?.verifyPeer == true)
        let connection = AMQPConnection(configuration: configuration, logger: TestEnvironment.logger)
        try await connection.connect()
        #expect(connection.isConnected)
        defer { Task { await connection.close() } }
        let queue = TestEnvironment.uniqueName("agentry.test.tls.")
        try await connection.declare(QueueDeclaration(name: queue, durable: false, autoDelete: false))
        defer { Task { try? await connection.deleteQueue(queue) } }
        let channel = try await connection.openChannel()
        try await channel.publish(AMQPMessage(exchange: "", routingKey: queue, body: Array("over tls".utf8)))
        let consumer = try await connection.consume(queue: queue, prefetch: 1)
        var iterator = consumer.makeAsyncIterator()
        let delivery = try #require(try await iterator.next())
        delivery.ack()
        #expect(String(decoding: delivery.body, as: UTF8.self) == "over tls")
        await consumer.close()
    }

    @Test("a broker certificate from another CA is refused")
    func untrustedCertificateRefused() async throws {
        let terminator = try Terminator()
        defer { terminator.stop() }
        let amqp = TestEnvironment.configuration.amqp
        let url =
            "amqps://\(amqp.user):\(amqp.password)@localhost:\(terminator.port)/\(amqp.virtualHostPathSegment)?cacertfile=\(terminator.directory.path)/other.pem"
        var lastError: AMQPError?
        let connection = AMQPConnection(configuration: try AMQPConfiguration(url: url), logger: TestEnvironment.logger)
        do {
            try await connection.connect()
            await connection.close()
            Issue.record("connected although the broker's certificate is not signed by the CA given")
        } catch let error as AMQPError {
            lastError = error
        }
        let error = try #require(lastError)
        #expect(error.code == .connectionFailed)
        #expect(error.message.contains("localhost:\(terminator.port)"))
        #expect(!error.message.contains("socket error"), "the refusal comes from certificate verification: \(error)")
    }
}

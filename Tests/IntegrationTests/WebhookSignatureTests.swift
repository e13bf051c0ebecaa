import AgentryCore
import Crypto
import Foundation
import Testing

@testable import AgentryAdmin

/// The signature checks alone, without a server (they are pure: the request's headers and bytes, a secret, a clock).
@Suite("Webhook signatures")
struct WebhookSignatureTests {
    private let secret = "It's a Secret to Everybody"
    private let body = Array("Hello, World!".utf8)

    private func hex(_ bytes: [UInt8]) -> String {
        HMAC<SHA256>.authenticationCode(for: bytes, using: SymmetricKey(data: Array(secret.utf8))).map { String(format: "%02x", $0) }.joined()
    }

    private func verify(_ source: WebhookSource, _ headers: [String: String], now: Date = Date()) -> Result<String, WebhookRefusal> {
        let lower = Dictionary(uniqueKeysWithValues: headers.map { ($0.key.lowercased(), $0.value) })
        return WebhookSignature.verify(source, secret: secret, header: { lower[$0.lowercased()] }, body: body, now: now)
    }

    @Test("GitHub: the example of GitHub's documentation verifies; another body, secret or form does not")
    func github() throws {
        let source = WebhookSource(name: "gh", secretEnv: "S", scheme: .github, type: "a")
        // docs.github.com, "Validating webhook deliveries": this secret and payload give this signature.
        let documented = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        #expect(hex(body) == String(documented.dropFirst(7)))
        #expect(verify(source, ["X-Hub-Signature-256": documented, "X-GitHub-Delivery": "d-1"]) == .success("d-1"))
        // Upper-case hex verifies too; without X-GitHub-Delivery, the signature stands for the delivery id.
        let upper = "sha256=" + hex(body).uppercased()
        #expect(verify(source, ["X-Hub-Signature-256": upper]) == .success(upper))
        let reasons = [
            verify(source, [:]), verify(source, ["X-Hub-Signature-256": String(documented.dropFirst(7))]),
            verify(source, ["X-Hub-Signature-256": "sha256=" + String(repeating: "0", count: 64)]),
            verify(source, ["X-Hub-Signature-256": "sha256=zz"]), verify(source, ["X-Hub-Signature-256": "sha1=abc"]),
        ].map { result -> String? in
            if case .failure(let refusal) = result { return refusal.reason.rawValue }
            return nil
        }
        #expect(reasons == ["missing_signature", "bad_signature", "bad_signature", "bad_signature", "bad_signature"])
        if case .failure(let refusal) = verify(source, ["X-Hub-Signature-256": "sha256=" + String(repeating: "0", count: 64)]) {
            #expect(!refusal.message.contains(hex(body)))
            #expect(refusal.message.contains("X-Hub-Signature-256"))
        }
    }

    @Test("GitLab: the token must equal the secret; the delivery id comes from X-Gitlab-Event-UUID, else Idempotency-Key")
    func gitlab() {
        let source = WebhookSource(name: "gl", secretEnv: "S", scheme: .gitlab, type: "a")
        #expect(verify(source, ["X-Gitlab-Token": secret, "X-Gitlab-Event-UUID": "u-1", "Idempotency-Key": "k-1"]) == .success("u-1"))
        #expect(verify(source, ["X-Gitlab-Token": secret, "Idempotency-Key": "k-1"]) == .success("k-1"))
        #expect(verify(source, ["X-Gitlab-Token": secret + "x"]).refusalReason == .badSignature)
        #expect(verify(source, ["X-Gitlab-Token": String(secret.dropLast())]).refusalReason == .badSignature)
        #expect(verify(source, ["X-Gitlab-Event-UUID": "u-1"]).refusalReason == .missingSignature)
    }

    @Test("hmac-sha256: over \"<timestamp>.<body>\", with or without sha256= or v1=, within 5 minutes either way")
    func hmac() {
        let source = WebhookSource(name: "h", secretEnv: "S", scheme: .hmacSHA256, type: "a", signatureHeader: "X-Sig")
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        func signed(_ stamp: Int, prefix: String = "") -> [String: String] {
            ["X-Sig": prefix + hex(Array("\(stamp).".utf8) + body), "X-Timestamp": String(stamp)]
        }
        let t = 1_800_000_000
        #expect(verify(source, signed(t), now: now) == .success(hex(Array("\(t).".utf8) + body)))
        #expect(verify(source, signed(t, prefix: "v1=").merging(["X-Delivery-Id": "evt_1"]) { $1 }, now: now) == .success("evt_1"))
        #expect(verify(source, signed(t + 299, prefix: "sha256="), now: now).refusalReason == nil)
        #expect(verify(source, signed(t - 301), now: now).refusalReason == .staleTimestamp)
        #expect(verify(source, signed(t + 301), now: now).refusalReason == .staleTimestamp)
        var moved = signed(t)
        moved["X-Timestamp"] = String(t + 1)
        #expect(verify(source, moved, now: now).refusalReason == .badSignature)
        #expect(verify(source, ["X-Timestamp": String(t)], now: now).refusalReason == .missingSignature)
        #expect(verify(source, ["X-Sig": "00"], now: now).refusalReason == .missingSignature)
    }
}

extension Result<String, WebhookRefusal> {
    fileprivate var refusalReason: WebhookRefusal.Reason? {
        if case .failure(let refusal) = self { return refusal.reason }
        return nil
    }
}

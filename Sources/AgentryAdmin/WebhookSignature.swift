import AgentryCore
import Crypto
import Foundation

/// Why a webhook request was refused: the reason (a metric label and the recorded reason) and what to tell the sender.
struct WebhookRefusal: Error, Sendable, Equatable {
    enum Reason: String, Sendable, CaseIterable {
        case badSignature = "bad_signature"
        case missingSignature = "missing_signature"
        case staleTimestamp = "stale_timestamp"
        case unknownSource = "unknown_source"
        case tooLarge = "too_large"
        case duplicate
        case badBody = "bad_body"
        case badEvent = "bad_event"
        case noSecret = "no_secret"
    }

    var reason: Reason
    /// Names the header that is missing or says the signature does not match; never the expected value.
    var message: String
}

/// Checks a webhook request's signature over the exact bytes received, in constant time, before anything parses them.
enum WebhookSignature {
    /// How far a `hmac-sha256` timestamp may be from now, either way.
    static let tolerance: TimeInterval = 300

    /// The delivery id when the request is signed with `secret` as `scheme` asks, or why it is not.
    /// - Parameters:
    ///   - header: the request's header value by name (case-insensitive).
    static func verify(
        _ source: WebhookSource, secret: String, header: (String) -> String?, body: [UInt8], now: Date = Date()
    ) -> Result<String, WebhookRefusal> {
        let key = SymmetricKey(data: Array(secret.utf8))
        switch source.scheme {
        case .github:
            let name = "X-Hub-Signature-256"
            guard let value = header(name), !value.isEmpty else { return .failure(missing(name)) }
            guard value.hasPrefix("sha256="), let mac = hex(value.dropFirst("sha256=".count)),
                HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: body, using: key)
            else { return .failure(mismatch(name, "sha256=<hex HMAC-SHA256 of the body>")) }
            return .success(header("X-GitHub-Delivery").flatMap(nonEmpty) ?? value)
        case .gitlab:
            let name = "X-Gitlab-Token"
            guard let value = header(name), !value.isEmpty else { return .failure(missing(name)) }
            guard constantTimeEqual(Array(value.utf8), Array(secret.utf8)) else {
                return .failure(WebhookRefusal(reason: .badSignature, message: "\(name) is not this source's secret token"))
            }
            // Without an id, the body's digest: a copy of the same body is then a duplicate.
            let fallback = SHA256.hash(data: body).map { String(format: "%02x", $0) }.joined()
            return .success(header("X-Gitlab-Event-UUID").flatMap(nonEmpty) ?? header("Idempotency-Key").flatMap(nonEmpty) ?? fallback)
        case .hmacSHA256:
            guard let signature = header(source.signatureHeader), !signature.isEmpty else { return .failure(missing(source.signatureHeader)) }
            guard let stamp = header(source.timestampHeader), !stamp.isEmpty else { return .failure(missing(source.timestampHeader)) }
            var text = Substring(signature)
            for prefix in ["sha256=", "v1="] where text.hasPrefix(prefix) { text = text.dropFirst(prefix.count) }
            guard let mac = hex(text),
                HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Array(stamp.utf8) + [UInt8(ascii: ".")] + body, using: key)
            else {
                return .failure(mismatch(source.signatureHeader, "[sha256=|v1=]<hex HMAC-SHA256 of \"<\(source.timestampHeader)>.<body>\">"))
            }
            guard let seconds = Int64(stamp), abs(Double(seconds) - now.timeIntervalSince1970) <= tolerance else {
                return .failure(
                    WebhookRefusal(
                        reason: .staleTimestamp,
                        message: "\(source.timestampHeader) '\(stamp.prefix(40))' is not Unix seconds within 5 minutes of this server's clock"))
            }
            return .success(header("X-Delivery-Id").flatMap(nonEmpty) ?? String(text).lowercased())
        }
    }

    private static func missing(_ name: String) -> WebhookRefusal {
        WebhookRefusal(reason: .missingSignature, message: "the request has no \(name) header; this source signs its requests with it")
    }

    private static func mismatch(_ name: String, _ form: String) -> WebhookRefusal {
        WebhookRefusal(reason: .badSignature, message: "the signature in \(name) does not match the body and this source's secret (expected \(form))")
    }

    private static func nonEmpty(_ text: String) -> String? { text.isEmpty ? nil : text }

    /// Hex digits as bytes; nil for anything else (odd length, other characters).
    static func hex(_ text: Substring) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard !digits.isEmpty, digits.count % 2 == 0, digits.count <= 256 else { return nil }
        func value(_ d: UInt8) -> UInt8? {
            switch d {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for i in stride(from: 0, to: digits.count, by: 2) {
            guard let high = value(digits[i]), let low = value(digits[i + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    /// Equal byte strings, compared without leaking through timing how much matched or how long the secret is: both
    /// are reduced to an HMAC under a key made for this process, and the codes compared in constant time.
    static func constantTimeEqual(_ given: [UInt8], _ expected: [UInt8]) -> Bool {
        let code = HMAC<SHA256>.authenticationCode(for: expected, using: comparisonKey)
        return HMAC<SHA256>.isValidAuthenticationCode(code, authenticating: given, using: comparisonKey)
    }

    private static let comparisonKey = SymmetricKey(size: .bits256)
}

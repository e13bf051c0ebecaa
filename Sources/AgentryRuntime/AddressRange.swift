import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 address range in CIDR notation (`169.254.0.0/16`, `fe80::/10`), for the addresses http handlers
/// may not connect to (`agentry worker --http-deny CIDR`).
public struct AddressRange: Sendable, Hashable, CustomStringConvertible {
    /// The network's bytes (4 or 16).
    let network: [UInt8]
    let prefixLength: Int

    public var description: String { "\(Self.format(network))/\(prefixLength)" }

    /// Parses `address/prefix` (or a bare address, a range of one). Throws a message naming the text.
    public init(_ text: String) throws(ConfigurationError) {
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        guard let first = parts.first, let bytes = Self.parse(first) else {
            throw ConfigurationError(problems: ["--http-deny '\(text)' is not an address range; expected CIDR such as 169.254.0.0/16 or fe80::/10"])
        }
        let maximum = bytes.count * 8
        var length = maximum
        if parts.count == 2 {
            guard let n = Int(parts[1]), (0...maximum).contains(n) else {
                throw ConfigurationError(problems: ["--http-deny '\(text)': the prefix length must be 0…\(maximum)"])
            }
            length = n
        }
        network = Self.masked(bytes, length)
        prefixLength = length
    }

    /// The default deny list: link-local addresses (169.254.0.0/16, which holds the cloud metadata service
    /// 169.254.169.254, and fe80::/10).
    public static let linkLocal: [AddressRange] = [try! AddressRange("169.254.0.0/16"), try! AddressRange("fe80::/10")]

    /// Whether the range holds `address` (4 or 16 bytes; an IPv4-mapped IPv6 address counts as its IPv4 address).
    func contains(_ address: [UInt8]) -> Bool {
        var address = address
        if address.count == 16, address[0..<10].allSatisfy({ $0 == 0 }), address[10] == 0xff, address[11] == 0xff {
            address = Array(address[12...])
        }
        guard address.count == network.count else { return false }
        return Self.masked(address, prefixLength) == network
    }

    static func masked(_ bytes: [UInt8], _ length: Int) -> [UInt8] {
        bytes.enumerated().map { index, byte in
            let bits = max(0, min(8, length - index * 8))
            return bits == 8 ? byte : byte & UInt8(truncatingIfNeeded: 0xff << (8 - bits))
        }
    }

    /// The bytes of an IPv4 or IPv6 address, or nil.
    static func parse(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    static func format(_ bytes: [UInt8]) -> String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        let ok = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &buffer, socklen_t(buffer.count)) != nil }
        let text = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return ok ? String(decoding: text, as: UTF8.self) : bytes.map(String.init).joined(separator: ".")
    }

    /// The bytes of `host` when it is an address written out (`10.0.0.1`, `[::1]`), nil when it is a name.
    static func literal(_ host: String) -> [UInt8]? {
        parse(host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host)
    }

    /// Every address `host` resolves to (a literal address is itself), as bytes; empty when it does not resolve.
    static func resolve(_ host: String) -> [[UInt8]] {
        if let literal = literal(host) { return [literal] }
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(bare, nil, &hints, &list) == 0, let first = list else { return [] }
        defer { freeaddrinfo(list) }
        var addresses: [[UInt8]] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            if let sockaddr = info.pointee.ai_addr {
                if info.pointee.ai_family == AF_INET {
                    var address = sockaddr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                    addresses.append(withUnsafeBytes(of: &address) { Array($0) })
                } else if info.pointee.ai_family == AF_INET6 {
                    var address = sockaddr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                    addresses.append(withUnsafeBytes(of: &address) { Array($0) })
                }
            }
            cursor = info.pointee.ai_next
        }
        return addresses
    }
}

/// What a worker lets its handlers do: which programs exec handlers may start, and which addresses http handlers
/// may not reach.
public struct HandlerPolicy: Sendable, Hashable {
    /// Default ``ExecAllowlist/default``.
    public var execAllow: ExecAllowlist
    /// Checked against every address an http handler's host (and each redirect's) resolves to. Default
    /// ``AddressRange/linkLocal``.
    public var httpDeny: [AddressRange]

    /// The user exec handlers run as; nil: the worker's own.
    public var execUser: ExecUser?

    public init(execAllow: ExecAllowlist = .default, httpDeny: [AddressRange] = AddressRange.linkLocal, execUser: ExecUser? = nil) {
        self.execAllow = execAllow
        self.httpDeny = httpDeny
        self.execUser = execUser
    }
}

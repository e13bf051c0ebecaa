import Foundation

extension AgentDefinition {
    /// What stands in for a secret in a definition shown to a caller without the admin token.
    public static let redacted = "<redacted>"

    /// A copy to show to callers who may not see secrets: the values of `exec.env` and `http.headers`, and a password
    /// in `http.url` or `llm.base_url`, replaced by ``redacted``. Names stay, so that the caller sees what is set.
    public func redactingSecrets() -> AgentDefinition {
        var copy = self
        switch handler {
        case .exec(var exec)?:
            exec.env = exec.env.mapValues { _ in Self.redacted }
            copy.handler = .exec(exec)
        case .http(var http)?:
            http.headers = http.headers.mapValues { _ in Self.redacted }
            if var url = URLComponents(string: http.url), url.password != nil {
                url.password = Self.redacted
                http.url = url.string ?? Self.redacted
            }
            copy.handler = .http(http)
        case .llm(var llm)?:
            // The key itself is never in a definition (only the name of the variable that holds it); a password in
            // the base URL is.
            if var url = URLComponents(string: llm.baseURL), url.password != nil {
                url.password = Self.redacted
                llm.baseURL = url.string ?? Self.redacted
            }
            copy.handler = .llm(llm)
        default:
            break
        }
        return copy
    }
}
